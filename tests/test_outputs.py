"""What a run leaves and says when it ends: failed.json for a run that ends without a metrics.json (an error,
a signal, a kill), the closing lines of a single run and of a sweep (folder, counts, the report command), the
note on runs of other experiments sharing the ad-hoc folder, and no Lightning srun hint in any output."""

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unlearn_bench.errors import Interrupted, UnlearnBenchError
from unlearn_bench.methods.base import Method, Regime
from unlearn_bench.run import pipeline
from unlearn_bench.train.loop import fit

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("unlearn-bench"))
FAILED = "failed.json"  # rundir.FAILED: what users and other tools look for


# -- test-only methods ------------------------------------------------------------------------------------
class RaisesBoom(Method):
    regime = Regime.ZERO_SHOT

    def unlearn(self, model, data):
        raise RuntimeError("boom\nsecond line")


class StoppedBySigterm(Method):
    regime = Regime.ZERO_SHOT

    def unlearn(self, model, data):
        raise Interrupted(signal.SIGTERM)  # what interrupts.install raises where the process is


class ReadsItsRecord(Method):
    """Keeps what failed.json says while the run validates and unlearns (``folder`` is set by the test)."""

    regime = Regime.ZERO_SHOT
    folder: Path | None = None
    seen: dict | None = None
    validating: dict | None = None

    def validate(self, model, info):
        ReadsItsRecord.validating = json.loads((ReadsItsRecord.folder / FAILED).read_text())

    def unlearn(self, model, data):
        ReadsItsRecord.seen = json.loads((ReadsItsRecord.folder / FAILED).read_text())
        return model


class DivergeOnSeed2(Method):
    """NaN loss for method seed 2 (Diverged: metrics.json with status failed), else identity."""

    regime = Regime.FORGET_ONLY

    def unlearn(self, model, data):
        if data.seed == 2:
            fit(model, data.forget.batches(64, seed=data.seed), lambda m, b: m(b[0]).sum() * float("nan"),
                lambda p: torch.optim.SGD(p, lr=0.1), data.device, epochs=1, progress=False)
        return model


# -- failed.json ----------------------------------------------------------------------------------------
def test_an_error_leaves_failed_json_and_a_later_success_removes_it(digits_cfg, tmp_path):
    from unlearn_bench.run.rundir import outcome
    run_dir = tmp_path / "run"
    with pytest.raises(RuntimeError):
        pipeline.run(digits_cfg("method._target_=test_outputs.RaisesBoom"), run_dir)
    record = json.loads((run_dir / FAILED).read_text())
    assert record["status"] == "failed" and record["error"] == "RuntimeError" and record["signal"] is None
    assert record["reason"] == "RuntimeError: boom second line"  # one line
    assert len(record["config_hash"]) == 16 and record["pid"] == os.getpid() and record["time"]
    assert outcome(run_dir) == ("failed", "RuntimeError: boom second line")
    assert not (run_dir / "metrics.json").exists()
    m = pipeline.run(digits_cfg("method=none"), run_dir)
    assert m["status"] == "ok" and not (run_dir / FAILED).exists() and outcome(run_dir) == ("finished", "")


def test_a_signal_is_recorded_as_interrupted(digits_cfg, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(Interrupted):
        pipeline.run(digits_cfg("method._target_=test_outputs.StoppedBySigterm"), run_dir)
    record = json.loads((run_dir / FAILED).read_text())
    assert (record["status"], record["signal"], record["error"]) == ("interrupted", "SIGTERM", "Interrupted")
    assert record["reason"] == "interrupted by SIGTERM; fix: rerun the same command to resume"


def test_a_run_in_progress_is_recorded_unfinished_so_a_killed_one_says_so(digits_cfg, tmp_path):
    run_dir = ReadsItsRecord.folder = tmp_path / "run"
    run_dir.mkdir()  # as Hydra makes it: a run killed while it still validates leaves a record as well
    m = pipeline.run(digits_cfg("method._target_=test_outputs.ReadsItsRecord"), run_dir)
    validating = ReadsItsRecord.validating
    assert validating["status"] == "unfinished" and "SIGKILL" in validating["reason"]
    seen = ReadsItsRecord.seen
    assert seen["status"] == "unfinished" and seen["config_hash"] == m["config_hash"]
    assert f"process {os.getpid()}" in seen["reason"] and "SIGKILL" in seen["reason"]
    assert not (run_dir / FAILED).exists()  # the finished run removed it


def test_a_validation_error_is_recorded_only_in_a_folder_without_a_finished_run(digits_cfg, tmp_path):
    made = tmp_path / "made"
    made.mkdir()  # as Hydra makes the run folder before the run starts
    with pytest.raises(UnlearnBenchError):
        pipeline.run(digits_cfg("forget.classes=[12]"), made)
    record = json.loads((made / FAILED).read_text())
    assert record["status"] == "failed" and record["error"] == "ConfigError"
    assert "out of range" in record["reason"]
    assert "\n" not in record["reason"] and "fix:" in record["reason"]
    assert {p.name for p in made.iterdir()} == {FAILED}  # nothing else of the run was written
    busy = tmp_path / "busy"
    busy.mkdir()
    holder = subprocess.Popen(  # another process is writing this folder: its record is its own
        [sys.executable, "-c", "import sys, time\nfrom unlearn_bench.run.rundir import run_lock\n"
         "with run_lock(__import__('pathlib').Path(sys.argv[1])):\n"
         " print('held', flush=True); time.sleep(60)",
         str(busy)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UnlearnBenchError):
            pipeline.run(digits_cfg("forget.classes=[12]"), busy)
    finally:
        holder.kill()
        holder.wait()
    assert not (busy / FAILED).exists()
    done = tmp_path / "done"
    pipeline.run(digits_cfg("method=none"), done)
    with pytest.raises(UnlearnBenchError):
        pipeline.run(digits_cfg("forget.classes=[12]"), done)
    assert not (done / FAILED).exists()  # the folder belongs to its finished run
    with pytest.raises(UnlearnBenchError, match="another configuration"):  # a refusal is not a failure either
        pipeline.run(digits_cfg("method=none", "seed=1"), done)
    assert not (done / FAILED).exists()


def test_outcome_reads_a_folder_back(tmp_path):
    import time

    from unlearn_bench.run.rundir import outcome
    for name, files in {"ok": {"metrics.json": {"status": "ok"}},
                        "diverged": {"metrics.json": {"status": "failed", "reason": "loss became nan"}},
                        "killed": {FAILED: {"status": "unfinished", "reason": "started ..."}}}.items():
        (tmp_path / name).mkdir()
        for f, content in files.items():
            (tmp_path / name / f).write_text(json.dumps(content))
    (tmp_path / "empty").mkdir()
    assert outcome(tmp_path / "ok", since=time.time() + 60) == ("skipped", "")  # finished before the command
    assert outcome(tmp_path / "ok", since=time.time() - 60) == ("finished", "")
    kind, reason = outcome(tmp_path / "diverged")
    assert kind == "failed" and reason.startswith("loss became nan") and "delete the folder" in reason
    assert outcome(tmp_path / "killed") == ("unfinished", "started ...")
    assert outcome(tmp_path / "empty")[0] == "unfinished"


def _run_folder(root: Path, name: str, setup: str, method: str, settings: dict) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"status": "ok", "setup": setup, "method": method}))
    (d / "config.yaml").write_text(json.dumps({"method": settings, "seed": 0}))  # JSON is YAML
    return d


def test_runs_of_other_experiments_in_a_folder_are_counted(tmp_path):
    from unlearn_bench.run.rundir import other_experiments
    mine = _run_folder(tmp_path, "a/finetune/seed0", "s1", "finetune", {"lr": 0.1})
    _run_folder(tmp_path, "a/finetune/seed1", "s1", "finetune", {"lr": 0.1})  # the same series: comparable
    _run_folder(tmp_path, "a/none/seed0", "s1", "none", {})  # another method of the same setup: comparable
    _run_folder(tmp_path, "a/finetune/seed2", "s1", "finetune", {"lr": 0.01})  # other settings
    _run_folder(tmp_path, "b/none/seed0", "s2", "none", {})  # another setup
    _run_folder(tmp_path, "c/none/seed0", "s3", "none", {})
    assert other_experiments(tmp_path, [mine]) == (2, 1)
    assert other_experiments(tmp_path / "a", [mine]) == (0, 1)
    assert other_experiments(tmp_path / "b", [tmp_path / "b/none/seed0"]) == (0, 0)


# -- what the command prints ------------------------------------------------------------------------------
def _cli(args, cwd, cache_dir, path_prefix=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}  # not inside a Slurm job
    env.update(OMP_NUM_THREADS="1", WANDB_MODE="offline", WANDB_SILENT="true", HYDRA_FULL_ERROR="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    if path_prefix:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    r = subprocess.run([CLI, *args, "data=digits", "model=mlp", "progress=false", "runs_dir=runs",
                        f"cache_dir={cache_dir}"], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def single(tmp_path_factory, cache_dir):
    """One ad-hoc run with an `srun` on PATH (Lightning's hint appears at every fit wherever one is: finetune
    fits even when the original comes from the cache), then the same command again."""
    cwd = tmp_path_factory.mktemp("single")
    fake = cwd / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "srun").chmod(stat.S_IRWXU)
    args = ["method=finetune", "method.epochs=1", "forget.classes=[3]"]
    first = _cli(args, cwd, cache_dir, path_prefix=fake)
    again = _cli(args, cwd, cache_dir)
    return cwd, first, again


def test_a_single_run_ends_with_its_metrics_file_and_the_next_command(single):
    cwd, first, _ = single
    lines = first.stdout.strip().splitlines()
    assert lines[-3] == "run finished: runs/adhoc/digits-mlp/finetune/forget3-seed0/metrics.json"
    m = json.loads((cwd / "runs/adhoc/digits-mlp/finetune/forget3-seed0/metrics.json").read_text())
    shown = lines[-2].split()
    assert shown[0::2][:4] == ["acc/forget_train", "acc/forget_test", "acc/retain_test", "acc/test"]
    # the Avg. Gap when an oracle is cached
    assert shown[0::2][4:] == (["gap/avg_to_retrain"] if "gap/avg_to_retrain" in m else [])
    assert [float(v) for v in shown[1::2]] == [round(m[k], 4) for k in shown[0::2]]  # the file's numbers
    assert lines[-1] == "next: unlearn-bench-report runs/adhoc"


def test_a_rerun_says_nothing_was_recomputed(single):
    _, _, again = single
    assert "run already finished (same configuration), nothing recomputed: " \
           "runs/adhoc/digits-mlp/finetune/forget3-seed0/metrics.json" in again.stdout.splitlines()


def test_lightnings_srun_hint_is_silenced(single):
    _, first, _ = single
    assert "srun" not in first.stdout + first.stderr


def test_a_sweep_ends_with_its_counts_the_report_command_and_a_note_on_other_experiments(tmp_path, cache_dir,
                                                                                     digits_cfg):
    target = "method._target_=test_outputs.DivergeOnSeed2"
    adhoc = tmp_path / "runs" / "adhoc"  # no name=: the default folder, shared by every ad-hoc command
    # finished before the sweep starts (the same configuration as the sweep's first job)
    pipeline.run(digits_cfg(target, "forget.classes=[3]", "method_seed=0"),
                 adhoc / "digits-mlp/none/forget3-seed0")
    # an earlier command's run of another setup (another training recipe) in the same folder
    pipeline.run(digits_cfg("method=none", "train.epochs=2"), adhoc / "digits-mlp/none/forget0-seed0")
    r = _cli(["-m", target, "forget.classes=[3]", "logger=wandb", "method_seed=0,1,2"], tmp_path, cache_dir)
    lines = r.stdout.strip().splitlines()
    assert lines[-5] == ("sweep finished: 3 runs under runs/adhoc: 1 finished, 1 skipped as already "
                         "finished, 1 failed")
    assert lines[-4].startswith("  failed: runs/adhoc/digits-mlp/none/forget3-seed0-mseed2: loss became nan")
    assert lines[-3].startswith("note: runs/adhoc also holds 1 run of another setup") and "name=" in lines[-3]
    assert lines[-2] == ("wandb: upload this sweep's offline runs with: wandb sync $(find runs/adhoc -type d "
                         "-name 'offline-run-*')")
    assert lines[-1] == "next: unlearn-bench-report runs/adhoc"
    # the documented find lists the offline wandb run of each job that ran (the skipped one made none)
    found = subprocess.run("find runs/adhoc -type d -name 'offline-run-*'", shell=True, cwd=tmp_path,
                           capture_output=True, text=True).stdout.split()
    assert sorted(Path(f).parent.parent.name for f in found) == ["forget3-seed0-mseed1",
                                                                  "forget3-seed0-mseed2"]


def test_a_single_run_names_runs_of_other_experiments_beside_it(tmp_path):
    from unlearn_bench.run.rundir import run_lines, shown
    mine = _run_folder(tmp_path, "adhoc/finetune/seed0", "s1", "finetune", {"lr": 0.1})
    _run_folder(tmp_path, "adhoc/finetune/seed1", "s1", "finetune", {"lr": 0.01})
    lines = run_lines(mine, "finished", "", {"acc/test": 0.5}, tmp_path / "adhoc", adhoc=True)
    assert lines[0] == f"run finished: {shown(mine / 'metrics.json')}" and lines[1] == "  acc/test 0.5000"
    assert lines[2].startswith(f"note: {shown(tmp_path / 'adhoc')} also holds 1 run of the same method "
                               f"with other settings, made by earlier commands; its report shows them "
                               f"beside this run")
    assert lines[3] == f"next: unlearn-bench-report {shown(tmp_path / 'adhoc')}"
    assert len(run_lines(mine, "finished", "", {}, tmp_path / "adhoc", adhoc=False)) == 2  # a named folder
