"""Nothing lost, nothing silently wrong: signals, replaced runs, escaping names, tampered cache outputs,
full disks and damaged metrics.json files (docs/errors.md, "Faults")."""

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock
from omegaconf import open_dict
from test_faults import _cli, _wait_for
from torch import nn

from unlearn_bench.cli import preflight
from unlearn_bench.config import compose
from unlearn_bench.errors import ConfigError, UnlearnBenchError
from unlearn_bench.run import pipeline
from unlearn_bench.run.cache import ModelCache
from unlearn_bench.run.identity import config_hash
from unlearn_bench.run.store import load_results
from unlearn_bench.train.loop import fit


# -- signals ----------------------------------------------------------------------------------------------
class _OneBatch:
    def __iter__(self):
        yield torch.randn(4, 3), torch.tensor([0, 1, 0, 1])

    def __len__(self):
        return 1


def _fit_sending(signum, steps=6):
    """``fit`` over ``steps`` one-batch epochs that sends ``signum`` to this process after the second step."""
    model, sent = nn.Linear(3, 2), []

    def after_step(m):
        if not sent and getattr(after_step, "n", 0) == 1:
            sent.append(signum)
            os.kill(os.getpid(), signum)
        after_step.n = getattr(after_step, "n", 0) + 1
    batches = _OneBatch()
    return fit(model, batches, lambda m, b: nn.functional.cross_entropy(m(b[0]), b[1]),
               lambda p: torch.optim.SGD(p, lr=0.1), "cpu", epochs=steps, after_step=after_step,
               progress=False)


def test_sigterm_goes_to_the_process_handler_not_lightning():
    """Under submitit the job's own SIGTERM handler logs and ignores it (its preemption signal requeues);
    Lightning must not turn it into a SystemExit that ends the job with status 0."""
    seen = []
    old = signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))
    try:
        curve = _fit_sending(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert seen == [signal.SIGTERM] and len(curve) == 6  # delivered once, and training went on


def test_ctrl_c_in_fit_is_a_keyboard_interrupt_and_sigint_stays_usable():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):  # Lightning would make it sys.exit(1) and ignore SIGINT after
        _fit_sending(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _stop(tmp_path, signum, *args):
    p = _cli(*args, "train.epochs=100000", "method=none", f"runs_dir={tmp_path}/runs",
             f"cache_dir={tmp_path}/c", cwd=tmp_path)
    _wait_for(lambda: list(tmp_path.glob("c/original/*.lock")), p)  # the original model is training
    time.sleep(1.0)
    os.kill(p.pid, signum)  # the process alone, as a scheduler's timeout does, not its group
    out, err = p.communicate(timeout=120)
    return p.returncode, [line for line in err.splitlines() if line.startswith("interrupted")]


def test_sigterm_ends_a_run_non_zero_with_one_line(tmp_path):
    rc, lines = _stop(tmp_path, signal.SIGTERM)
    assert rc == 128 + signal.SIGTERM
    assert lines == [f"interrupted by SIGTERM: run {tmp_path}/runs/adhoc/digits-mlp/none/forget0-seed0 left "
                     f"unfinished; rerun the same command to resume"]
    assert not list(tmp_path.rglob("metrics.json")) and not list(tmp_path.rglob("*.tmp"))


@pytest.mark.slow
def test_ctrl_c_ends_a_run_with_one_line(tmp_path):
    rc, lines = _stop(tmp_path, signal.SIGINT)
    assert rc == 130 and len(lines) == 1 and lines[0].startswith("interrupted by SIGINT: run ")


@pytest.mark.slow
def test_sigterm_ends_a_sweep_saying_what_it_left(tmp_path):
    # job 1 of 3 is finished already (its metrics.json carries its config_hash): it is skipped, job 2 trains
    cfg = compose(["data=digits", "model=mlp", "method=none", "train.epochs=100000", "seed=0"])
    with open_dict(cfg):
        cfg.pop("overwrite", None)  # where a run goes is not part of its hash
    done = tmp_path / "runs/adhoc/digits-mlp/none/forget0-seed0"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text(json.dumps({"config_hash": config_hash(cfg), "status": "ok"}))
    rc, lines = _stop(tmp_path, signal.SIGTERM, "-m", "seed=0,1,2")
    assert rc == 128 + signal.SIGTERM and len(lines) == 1
    assert "1 of 3 jobs finished, 1 interrupted" in lines[0] and "forget0-seed1" in lines[0]
    assert "1 did not start" in lines[0] and "rerun the same command" in lines[0]


# -- replacing a finished run -------------------------------------------------------------------------------
def test_a_finished_run_of_another_config_is_kept_unless_overwrite(digits_cfg, tmp_path, caplog):
    run_dir = tmp_path / "run"
    first = pipeline.run(digits_cfg("method=none", "train.epochs=3"), run_dir)
    before = (run_dir / "metrics.json").read_bytes()
    with pytest.raises(UnlearnBenchError) as e:
        pipeline.run(digits_cfg("method=none", "train.epochs=2"), run_dir)
    msg = str(e.value)
    assert "train.epochs: 3 there, 2 here" in msg and "name=" in msg and "overwrite=true" in msg
    assert "\n" not in msg and (run_dir / "metrics.json").read_bytes() == before
    second = pipeline.run(digits_cfg("method=none", "train.epochs=2", "overwrite=true"), run_dir)
    assert second["config_hash"] != first["config_hash"]
    [kept] = run_dir.glob("metrics.json.replaced-*")
    assert kept.read_bytes() == before and list(run_dir.glob("predictions.npz.replaced-*"))
    assert "overwrite" not in (run_dir / "config.yaml").read_text()  # not part of the run's configuration
    assert list(load_results(tmp_path)["config_hash"]) == [second["config_hash"]]


def test_a_second_writer_of_one_run_directory_is_refused(digits_cfg, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = FileLock(str(run_dir / ".run.lock"))
    holder.acquire()  # a run of this folder in progress
    try:
        with pytest.raises(UnlearnBenchError, match="another process is writing"):
            pipeline.run(digits_cfg("method=none", "train.epochs=2"), run_dir)
    finally:
        holder.release()
    assert not (run_dir / "metrics.json").exists()


# -- names that leave runs_dir ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../escaped", "/tmp/elsewhere", "..", "ok,../x"])
def test_a_name_outside_runs_dir_is_refused(tmp_path, name):
    with pytest.raises(ConfigError) as e:
        preflight([f"runs_dir={tmp_path}/out/inner", f"name={name}"], multirun="," in name)
    assert "outside runs_dir" in str(e.value) and "fix:" in str(e.value)
    preflight([f"runs_dir={tmp_path}/out/inner", "name=group/sub"])  # a nested name stays inside


# -- cached outputs -----------------------------------------------------------------------------------------
def test_tampered_cached_logits_and_attacks_are_recomputed(digits_cfg, tmp_path, caplog):
    args = ("method=none", "train.epochs=3", f"cache_dir={tmp_path}/c")
    first = pipeline.run(digits_cfg(*args), tmp_path / "a")
    for f in (tmp_path / "c" / "logits").glob("*.npz"):  # a valid file of the right shapes, shifted logits
        with np.load(f) as z:
            arrays = {k: z[k] for k in z.files}
        shifted = {k: (np.roll(v, 1, axis=1) if v.ndim == 2 else v) for k, v in arrays.items()}
        np.savez(f, **shifted)
    for f in (tmp_path / "c" / "logits").glob("*.json"):
        f.write_text(f.read_text().replace("0.", "0.0"))
    with caplog.at_level(logging.WARNING):
        second = pipeline.run(digits_cfg(*args), tmp_path / "b")
    keys = [k for k in first if k.startswith("original/") and isinstance(first[k], float)]
    assert len(keys) > 5 and {k: second[k] for k in keys} == {k: first[k] for k in keys}
    assert "recomputing" in caplog.text


# -- full disks ---------------------------------------------------------------------------------------------
def _full(*args, **kwargs):
    """A writer on a full disk: half the file, then ENOSPC (np.savez_compressed(file, ...) or
    torch.save(obj, file))."""
    f = next(a for a in args if isinstance(a, (str, Path)) or hasattr(a, "write"))
    (open(f, "wb") if isinstance(f, (str, Path)) else f).write(b"PK\x03\x04 half an archive")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_cache_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", _full)
    with pytest.raises(UnlearnBenchError) as e:
        ModelCache(tmp_path).get_or_train("original", {"s": 1}, lambda: nn.Linear(3, 2), lambda m: {})
    assert str(e.value).startswith(f"no space left on {tmp_path / 'original'} while writing the cached "
                                   f"original")
    assert "fix: free space or set cache_dir/runs_dir elsewhere" in str(e.value)
    assert [p.suffix for p in (tmp_path / "original").iterdir()] == [".lock"]


def test_a_full_runs_disk_leaves_no_partial_predictions(digits_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez_compressed", _full)
    with pytest.raises(UnlearnBenchError, match="no space left on .* while writing predictions.npz; fix"):
        pipeline.run(digits_cfg("method=none", "train.epochs=3"), tmp_path / "run")
    left = {p.name for p in (tmp_path / "run").iterdir()}
    assert not left & {"predictions.npz", "metrics.json"} and not [n for n in left if n.endswith(".tmp")]


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="needs root to mount a tmpfs")
def test_a_real_full_filesystem(digits_cfg, tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)]).returncode:
        pytest.skip("mount not permitted here")
    try:
        message = f"no space left on {tiny}/original while writing the cached"
        with pytest.raises(UnlearnBenchError, match=message):
            pipeline.run(digits_cfg("method=none", "model.hidden=[512,512]", f"cache_dir={tiny}"),
                         tmp_path / "r")
        assert not list(tiny.rglob("*.tmp")) and not list(tiny.rglob("*.pt"))
    finally:
        subprocess.run(["umount", "--lazy", str(tiny)])  # lazy: an open lock file would keep it busy


# -- the report over damaged runs ---------------------------------------------------------------------------
def test_damaged_metrics_files_are_skipped_by_name(digits_cfg, tmp_path, caplog):
    from unlearn_bench.report.tables import write_report
    good = tmp_path / "runs" / "good"
    pipeline.run(digits_cfg("method=none", "train.epochs=3"), good)
    m = json.loads((good / "metrics.json").read_text())
    damaged = {"list": [m], "nan": {**m, "acc/forget_train": float("nan")}, "text": {**m, "acc/test": "high"},
               "no_method": {k: v for k, v in m.items() if k != "method"}, "not_json": "{broken"}
    for name, content in damaged.items():
        d = tmp_path / "runs" / name
        shutil.copytree(good, d)
        (d / "metrics.json").write_text(content if isinstance(content, str) else json.dumps(content))
    with caplog.at_level(logging.WARNING):
        df = load_results(tmp_path / "runs")
        md = write_report(tmp_path / "runs", figures=False)
    assert list(df["run_dir"]) == [str(good)] and "Original" in md  # the good run is still reported
    assert df.attrs["found"] == 6 and df.attrs["loaded"] == 1 and len(df.attrs["skipped"]) == 5
    for name in damaged:
        assert str(tmp_path / "runs" / name / "metrics.json") in caplog.text
    assert "1 of 6 metrics.json" in caplog.text
