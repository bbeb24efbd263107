"""Faults: corrupt or unsafe cache entries, a diverging method, killed runs and sweeps, two workers sharing
one cache entry, determinism, secrets. Real subprocesses and signals, on digits so it stays small."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from unlearn_bench.methods.base import Method, Regime
from unlearn_bench.run import pipeline
from unlearn_bench.run.cache import ModelCache, file_sha256
from unlearn_bench.run.store import load_results
from unlearn_bench.train.loop import fit

ROOT = Path(__file__).resolve().parent.parent
SECRET = "dummy-secret-7f3a9c1e"


# -- cache entries ------------------------------------------------------------------------------------
def _build():
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def _trainer(calls):
    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.weight.add_(1.0)
        return {"curve": [0.0]}
    return train


def _entry(cache):
    [pt] = list((cache.root / "original").glob("*.pt"))
    return pt, pt.with_suffix(".json")


def _flip(pt, meta):
    b = bytearray(pt.read_bytes())
    b[len(b) // 2] ^= 0xFF
    pt.write_bytes(bytes(b))


def _truncate(pt, meta):
    pt.write_bytes(pt.read_bytes()[: len(pt.read_bytes()) // 3])


def _truncate_and_rehash(pt, meta):  # the hash matches, the archive is still broken
    _truncate(pt, meta)
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "sha256": file_sha256(pt)}))


def _wrong_shape(pt, meta):  # a valid weights file of another architecture under the same key
    torch.save(nn.Linear(4, 2).state_dict(), pt)
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "sha256": file_sha256(pt)}))


FAULTS = {
    "flipped_byte": _flip,
    "truncated": _truncate,
    "truncated_rehashed": _truncate_and_rehash,
    "wrong_shape": _wrong_shape,
    "missing_meta": lambda pt, meta: meta.unlink(),
    "garbage_meta": lambda pt, meta: meta.write_text("{not json"),
    "missing_checkpoint": lambda pt, meta: pt.unlink(),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_damaged_cache_entry_is_rebuilt(tmp_path, fault):
    cache, calls = ModelCache(tmp_path), []
    trained, _, hit = cache.get_or_train("original", {"s": 1}, _build, _trainer(calls))
    assert hit is False and len(calls) == 1
    FAULTS[fault](*_entry(cache))
    model, meta, hit = cache.get_or_train("original", {"s": 1}, _build, _trainer(calls))
    assert hit is False and len(calls) == 2
    # rebuilt from a fresh initialisation, so the weights equal the first training's
    assert torch.equal(model.weight, trained.weight)
    pt, meta_path = _entry(cache)
    assert json.loads(meta_path.read_text())["sha256"] == file_sha256(pt)
    again, _, hit = cache.get_or_train("original", {"s": 1}, _build, _trainer(calls))
    assert hit is True and len(calls) == 2 and torch.equal(again.weight, trained.weight)
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written file left behind


class _Payload:
    """Unpickling this would create ``marker``: proof that the file was (or was not) unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_pickle_bearing_checkpoint_is_refused_unopened(tmp_path):
    from unlearn_bench.errors import CacheError
    cache, calls = ModelCache(tmp_path / "c"), []
    cache.get_or_train("original", {"s": 1}, _build, _trainer(calls))
    pt, meta = _entry(cache)
    marker = tmp_path / "unpickled"
    torch.save({"weight": torch.zeros(2, 3), "bias": torch.zeros(2), "x": _Payload(marker)}, pt)
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "sha256": file_sha256(pt)}))
    with pytest.raises(CacheError) as e:
        cache.get_or_train("original", {"s": 1}, _build, _trainer(calls))
    assert "fix:" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists() and len(calls) == 1


# -- a diverging method ---------------------------------------------------------------------------------
class DivergeOnSeed0(Method):
    """Test-only method: gradient steps on a NaN loss for seed 0 (so ``fit`` raises Diverged), the
    identity otherwise; one sweep then holds a failed run followed by a good one."""

    regime = Regime.FORGET_ONLY

    def unlearn(self, model, data):
        if data.seed == 0:
            fit(model, data.forget.batches(64, seed=data.seed),
                lambda m, b: m(b[0]).sum() * float("nan"), lambda p: torch.optim.SGD(p, lr=0.1),
                data.device, epochs=1, progress=False)
        return model


def _cli(*args, cwd, env=None, **kw):
    e = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
         "WANDB_MODE": "offline", **(env or {})}
    flags = [a for a in args if a.startswith("-")]  # Hydra's parser wants flags before overrides
    return subprocess.Popen([sys.executable, "-m", "unlearn_bench.cli", *flags, "data=digits", "model=mlp",
                             "progress=false", *(a for a in args if a not in flags)], cwd=cwd, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kw)


def _finish(p, timeout=300):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err[-2000:]
    return out + err


@pytest.mark.slow
def test_diverging_run_is_recorded_failed_and_the_sweep_goes_on(tmp_path):
    _finish(_cli("-m", "seed=0,1", "method._target_=test_faults.DivergeOnSeed0", "train.epochs=2",
                 f"runs_dir={tmp_path}/runs", f"cache_dir={tmp_path}/c", cwd=tmp_path))
    df = load_results(tmp_path / "runs").set_index("seed")
    assert df.loc[0, "status"] == "failed" and "nan" in df.loc[0, "reason"].lower()
    assert df.loc[1, "status"] == "ok" and df.loc[1, "acc/retain_test"] > 0.5


# -- killed runs ----------------------------------------------------------------------------------------
def _wait_for(predicate, proc, timeout=240):
    t0 = time.time()
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.1)


def _kill(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_run_killed_mid_training_leaves_no_metrics_and_a_rerun_completes(tmp_path):
    args = ("method=none", "train.epochs=60", f"runs_dir={tmp_path}/runs", f"cache_dir={tmp_path}/c",
            "logger=wandb")
    env = {"WANDB_API_KEY": SECRET}
    p = _cli(*args, cwd=tmp_path, env=env)
    _wait_for(lambda: list(tmp_path.glob("c/original/*.lock")), p)  # the original model is training
    time.sleep(1.0)
    assert not list(tmp_path.glob("c/original/*.json")), "training finished before the kill"
    _kill(p)
    assert not list(tmp_path.rglob("metrics.json")) and not list(tmp_path.glob("c/original/*.pt"))
    [record] = list(tmp_path.rglob("failed.json"))  # what a run killed without warning leaves: it never ended
    assert json.loads(record.read_text())["status"] == "unfinished"
    log = _finish(_cli(*args, cwd=tmp_path, env=env))
    [m] = list(tmp_path.rglob("metrics.json"))
    assert json.loads(m.read_text())["original_cache_hit"] is False and "training (pid" in log
    assert not record.exists()  # the finished run replaced it
    # no secret reaches the run directory (config, env.json, Hydra's logs, wandb's offline files)
    for f in m.parent.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


@pytest.mark.slow
def test_two_workers_share_one_training(tmp_path):
    common = ("method=none", "train.epochs=8", f"cache_dir={tmp_path}/c")
    procs = [_cli(*common, f"runs_dir={tmp_path}/{w}", cwd=tmp_path) for w in ("a", "b")]
    logs = [_finish(p) for p in procs]
    assert sum(log.count(": training (pid") for log in logs) == 1  # cache.py logs each training once
    ms = [json.loads(next((tmp_path / w).rglob("metrics.json")).read_text()) for w in ("a", "b")]
    assert sorted(m["original_cache_hit"] for m in ms) == [False, True]
    assert ms[0]["original/acc/test"] == ms[1]["original/acc/test"]
    trainer = procs[[m["original_cache_hit"] for m in ms].index(False)].pid
    [meta] = list((tmp_path / "c" / "original").glob("*.json"))
    assert json.loads(meta.read_text())["trained_by_pid"] == trainer
    assert not list((tmp_path / "c").rglob("*.tmp"))


@pytest.mark.slow
def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path):
    args = ("-m", "seed=0,1,2", "method=none", "train.epochs=6", "name=resume", f"runs_dir={tmp_path}/runs",
            f"cache_dir={tmp_path}/c")
    p = _cli(*args, cwd=tmp_path)
    _wait_for(lambda: list(tmp_path.rglob("metrics.json")), p)
    _kill(p)
    done = {m.parent: {f.name: f.stat().st_mtime_ns for f in m.parent.iterdir() if f.is_file()
                       and f.suffix != ".log"} for m in tmp_path.rglob("metrics.json")}
    assert 1 <= len(done) < 3
    _finish(_cli(*args, cwd=tmp_path))
    for run_dir, mtimes in done.items():
        assert {n: (run_dir / n).stat().st_mtime_ns for n in mtimes} == mtimes  # untouched
    df = load_results(tmp_path / "runs")
    assert sorted(df["seed"]) == [0, 1, 2] and (df["status"] == "ok").all()


# -- determinism ----------------------------------------------------------------------------------------
def test_same_config_and_seed_give_identical_results(digits_cfg, tmp_path):
    runs = []
    for i in (1, 2):  # a fresh cache each time: the original model is trained twice
        cfg = digits_cfg("method=none", "forget.classes=[4]", "seed=3", "train.epochs=4",
                         f"cache_dir={tmp_path}/cache{i}")
        m = pipeline.run(cfg, tmp_path / f"run{i}")
        assert m["original_cache_hit"] is False
        runs.append(m)
    acc = [{k: v for k, v in m.items() if "acc/" in k} for m in runs]
    assert acc[0] == acc[1] and len(acc[0]) >= 10
    assert (tmp_path / "run1/split.json").read_bytes() == (tmp_path / "run2/split.json").read_bytes()


# -- secrets ------------------------------------------------------------------------------------------
def test_no_secret_reaches_the_run_directory(digits_cfg, tmp_path, monkeypatch):
    """The slow kill test checks the CLI with wandb; this checks the pipeline's own files every time."""
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    pipeline.run(digits_cfg("method=none", "logger=csv", "train.epochs=4", "seed=3"), tmp_path / "run")
    files = [f for f in (tmp_path / "run").rglob("*") if f.is_file()]
    assert {"config.yaml", "env.json", "metrics.json"} <= {f.name for f in files}
    assert not [f for f in files if SECRET.encode() in f.read_bytes()]
