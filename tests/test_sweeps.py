"""Sweeps through the real CLI: a 2-method x 2-seed multirun on digits gives 4 run directories and a report
with Original (and Retrain) rows; relaunching it reruns nothing; the joblib launcher runs the same sweep in
parallel (slow tier). Launcher and Optuna sweeper configs compose; submitit's local executor and an Optuna
study run for real (an Optuna study's output and objective: test_objective.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from unlearn_bench.config import compose
from unlearn_bench.report.tables import write_report

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("unlearn-bench"))
METHODS = {p.stem for p in (ROOT / "conf" / "method").glob("*.yaml")}
SWEEPERS = sorted(p.stem for p in (ROOT / "conf" / "hydra" / "sweeper").glob("optuna_*.yaml"))
QUICK = ["data=digits", "model=mlp", "train.epochs=3", "progress=false"]  # 3 epochs: the CLI's cost


def _cli(args, tmp_path, cache_dir, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    r = subprocess.run([CLI, *args, f"runs_dir={tmp_path}", f"cache_dir={cache_dir}"], capture_output=True,
                       check=False, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _mtimes(root: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in root.rglob("metrics.json")}


@pytest.fixture(scope="module")
def methods():
    second = "retrain" if "retrain" in METHODS else "lra_npp" if "lra_npp" in METHODS else None
    if second is None:
        pytest.skip("needs a second method besides none")
    return ["none", second]


def test_multirun_report_and_resume(tmp_path, cache_dir, methods):
    args = ["-m", *QUICK, f"method={','.join(methods)}", "seed=0,1", "name=sweep"]
    _cli(args, tmp_path, cache_dir)
    runs = sorted(p.parent.relative_to(tmp_path) for p in tmp_path.rglob("metrics.json"))
    want = [f"sweep/digits-mlp/{m}/forget0-seed{s}" for m in sorted(methods) for s in (0, 1)]
    assert [str(r) for r in runs] == want

    md = write_report(tmp_path / "sweep")
    table = pd.read_csv(tmp_path / "sweep" / "results.csv")
    # `none` returns the original unchanged, so its runs are the Original row (shown once)
    expected = ["Original", *(m for m in methods if m != "none")]
    assert table["method"].tolist() == expected and (table["n"] == 2).all()
    assert "Original" in md and (tmp_path / "sweep" / "report.md").exists()
    assert (tmp_path / "sweep" / "pareto-digits-mlp.png").stat().st_size > 1000

    before = _mtimes(tmp_path)
    _cli(args, tmp_path, cache_dir)  # the same command again: every run is complete
    assert _mtimes(tmp_path) == before


@pytest.mark.slow
def test_joblib_launcher_runs_in_parallel_and_resumes(tmp_path, cache_dir, methods):
    # two runs at once also exercise the model cache's file lock; each worker imports torch (slow on 2 cores)
    args = ["-m", *QUICK, f"method={','.join(methods)}", "seed=0,1", "name=par", "hydra/launcher=local"]
    _cli(args, tmp_path, cache_dir)
    before = _mtimes(tmp_path)
    assert len(before) == 4
    _cli(args, tmp_path, cache_dir)
    assert _mtimes(tmp_path) == before


@pytest.mark.parametrize("launcher, target", [
    ("local", "JoblibLauncher"), ("slurm", "SlurmArrayLauncher"), ("slurm_cpu", "SlurmArrayLauncher"),
    ("slurm_local", "LocalArrayLauncher"), ("ray_cluster", "RayLauncher")])
def test_launcher_configs_compose(launcher, target):
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher

    cfg = compose([f"hydra/launcher={launcher}", "name=exp"])
    assert cfg.hydra.launcher._target_.endswith(target)
    # Hydra instantiates only launchers it discovers under hydra_plugins: ours must be among them
    assert target in {c.__name__ for c in Plugins.instance().discover(Launcher)}
    if launcher.startswith("slurm"):
        assert cfg.hydra.launcher.timeout_min > 0 and cfg.hydra.launcher.name == "ub-exp"
        assert cfg.hydra.launcher.gpus_per_node == (1 if launcher == "slurm" else 0)
    if launcher == "slurm":
        setup = OmegaConf.to_container(cfg.hydra.launcher.setup, resolve=True)
        assert "export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK" in " ".join(setup)
        assert not any("WANDB_MODE" in line for line in setup)  # logger.mode decides, not the job's shell
    if launcher == "ray_cluster":
        from hydra_plugins.unlearn_bench_launchers.ray_launcher import init_kwargs
        # Ray refuses object_store_memory when joining a running cluster
        joining = {"address": "127.0.0.1:6379", "object_store_memory": 1}
        assert "object_store_memory" not in init_kwargs(joining)
        assert init_kwargs({"address": None})["object_store_memory"] > 0


@pytest.mark.parametrize("sweeper", SWEEPERS)
def test_optuna_search_spaces_name_real_keys(sweeper):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    method = sweeper.removeprefix("optuna_")
    if method == "fair":
        cfg = compose([f"hydra/sweeper={sweeper}"])
        assert cfg.hydra.sweeper.sampler.seed == 0 and cfg.hydra.sweeper.n_trials > 0
        return
    if method not in METHODS:
        pytest.skip(f"method {method} has no config yet")
    cfg = compose([f"hydra/sweeper={sweeper}", f"method={method}", "experiment=tune"])
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params, sweeper
    for key in params:
        assert key.startswith("method.") and key.split(".", 1)[1] in cfg.method, f"{sweeper}: {key}"
    # fairness: the budget and sampler come from optuna_fair alone
    fair = compose(["hydra/sweeper=optuna_fair"]).hydra.sweeper
    assert cfg.hydra.sweeper.n_trials == fair.n_trials and cfg.hydra.sweeper.sampler == fair.sampler


@pytest.mark.slow
def test_submitit_local_executor_runs_and_a_relaunch_submits_nothing(tmp_path, cache_dir):
    base = ["-m", *QUICK, "method=none", "name=sub", "hydra/launcher=slurm_local"]
    _cli([*base, "seed=0"], tmp_path, cache_dir)
    assert len(list((tmp_path / "sub").rglob("metrics.json"))) == 1
    jobs = set((tmp_path / "sub" / ".submitit").iterdir())
    assert jobs  # it went through submitit's job folders
    out = _cli([*base, "seed=0,1", "hydra.launcher.dry_run=true"], tmp_path, cache_dir).stdout
    assert "1 of 2 runs already finished (skipped); would submit 1" in out and "seed=1" in out
    assert set((tmp_path / "sub" / ".submitit").iterdir()) == jobs  # a dry run submits nothing
    _cli([*base, "seed=0,1"], tmp_path, cache_dir)
    jobs2 = set((tmp_path / "sub" / ".submitit").iterdir())
    assert len(jobs2 - jobs) == 1  # only the unfinished run was submitted
    out = _cli([*base, "seed=0,1"], tmp_path, cache_dir).stdout
    assert "2 of 2 runs already finished (skipped); submitting 0" in out
    assert set((tmp_path / "sub" / ".submitit").iterdir()) == jobs2


@pytest.mark.slow
def test_optuna_tune_minimises_the_gap(tmp_path, cache_dir):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    if "finetune" not in METHODS:
        pytest.skip("needs the finetune method")
    _cli(["-m", *QUICK, "experiment=tune", "method=finetune", "hydra/sweeper=optuna_finetune",
          "hydra.sweeper.n_trials=2", "method.epochs=1"], tmp_path, cache_dir, timeout=600)
    study = tmp_path / "tune" / "digits-mlp" / "finetune"  # one folder per method's study
    gaps = [yaml.safe_load(p.read_text())["gap/avg_to_retrain"] for p in study.rglob("metrics.json")]
    assert len(gaps) == 2
    best = yaml.safe_load((study / "optimization_results.yaml").read_text())["best_value"]
    assert best == pytest.approx(min(gaps))  # each trial returned its gap: tune.yaml's optimized_metric


@pytest.mark.slow
def test_ray_launcher_runs_locally(tmp_path, cache_dir):
    pytest.importorskip("ray")
    _cli(["-m", *QUICK, "method=none", "seed=0,1", "name=ray", "hydra/launcher=ray_cluster"], tmp_path,
         cache_dir)
    assert len(list((tmp_path / "ray").rglob("metrics.json"))) == 2


# -- every job validated before the first starts (sweep_check) ------------------------------------------
def test_sweep_jobs_follow_the_basic_sweeper():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from unlearn_bench.cli import CONFIG_DIR
    from unlearn_bench.cli.sweep_check import sweep_jobs
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        jobs = sweep_jobs(["experiment=default", "seed=0,1"], hydra_compose)
        assert len(jobs) == 2 * len(str(yaml.safe_load((ROOT / "conf/experiment/default.yaml").read_text())
                                        ["hydra"]["sweeper"]["params"]["method"]).split(","))
        # a command-line sweep of the same key replaces the experiment's
        jobs = sweep_jobs(["experiment=default", "method=none,retrain"], hydra_compose)
        swept = sorted(o for job in jobs for o in job if o.startswith("method="))
        assert swept == ["method=none", "method=retrain"]
        assert sweep_jobs(["data=digits", "hydra/sweeper=optuna_finetune"], hydra_compose) is None


def test_check_sweep_builds_each_setup_once_and_checks_every_seed(tmp_path):
    from unlearn_bench.cli.sweep_check import check_sweep
    from unlearn_bench.errors import ConfigError
    assert check_sweep(["data=digits", "method=none,finetune", "seed=0,1,2"]) == 2  # seeds share a setup
    with pytest.raises(ConfigError, match=r"^job 3 of 3 \(seed=-1\): seed=-1"):
        check_sweep(["data=digits", "seed=0,1,-1"])
    with pytest.raises(ConfigError, match=r"^job 3 of 4 \(forget.classes=\[12\] seed=0\): forget class"):
        check_sweep(["data=digits", "method=lra_npp", "method.n=10", "forget.classes=[3],[12]", "seed=0,1"])
    # data errors too
    with pytest.raises(ConfigError, match=r"^job 1 of 2 \(seed=0\): dataset mnist not found"):
        check_sweep(["data=mnist", "data.download=false", f"data.root={tmp_path}", f"cache_dir={tmp_path}",
                     "seed=0,1"])


def test_invalid_job_stops_the_sweep_before_anything_runs(tmp_path, cache_dir):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    r = subprocess.run([CLI, "-m", *QUICK, "method=none,lra_npp", "forget.classes=[3],[12]",
                        f"runs_dir={tmp_path}", f"cache_dir={cache_dir}"], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env=env)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("error: job 2 of 4 (method=none forget.classes=[12]): forget class(es) [12] "
                               "out of range") and "no job was started" in r.stderr
    assert not list(tmp_path.rglob("metrics.json")) and not list(tmp_path.rglob("config.yaml"))


def test_a_sweep_whose_jobs_would_share_a_run_directory_is_refused():
    from unlearn_bench.cli.sweep_check import check_sweep, unnamed_keys
    from unlearn_bench.errors import ConfigError
    with pytest.raises(ConfigError, match="differ in method.lr, which the run directory"):
        check_sweep(["data=digits", "method=finetune", "method.lr=0.1,0.001"])
    with pytest.raises(ConfigError, match="differ in train"):  # a config group the directory does not name
        check_sweep(["data=digits", "train=adam,sgd"])
    subdir = "${hydra:runtime.choices.method}/h${method.h}/forget${ub_join:${forget.classes}}-seed${seed}"
    assert unnamed_keys(subdir, {"method", "method.h", "forget.classes", "seed"}) == []
    assert unnamed_keys(subdir, {"method.n", "seed"}) == ["method.n"]
    assert unnamed_keys("${hydra.job.override_dirname}", {"method.n"}) == []
    assert unnamed_keys("trial${hydra:job.num}", {"method.n"}) == []  # a folder per job names every key


def test_a_run_in_progress_elsewhere_is_not_submitted_again(tmp_path, monkeypatch, capsys):
    """A relaunch while an array still runs: the live run's folder is left to it, and named."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from hydra.core.utils import JobReturn, JobStatus

    from hydra_plugins.unlearn_bench_launchers import skip
    # composing rescans Hydra's plugins, which executes this module again: compose before patching it
    launcher = SimpleNamespace(config=compose([]), hydra_context=None)
    run_dir = tmp_path / "digits-mlp" / "none" / "forget0-seed0"
    assert skip.in_progress(run_dir) is None
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\nfrom unlearn_bench.run.rundir "
         "import run_lock\nwith run_lock(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)",
         str(run_dir)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        owner = skip.in_progress(run_dir)
        assert owner["pid"] == holder.pid
        live = JobReturn(overrides=["seed=0"], status=JobStatus.COMPLETED,
                         _return_value=skip.InProgress(run_dir, owner))
        monkeypatch.setattr(skip, "split_finished", lambda *a: ([1], {0: live}))
        submitted = []
        out = skip.launch_unfinished(launcher, [["seed=0"], ["seed=1"]], 0,
                                     submit=lambda jobs, idx: submitted.extend(jobs) or ["ran"])
        assert submitted == [["seed=1"]] and out[0] is live and out[1] == "ran"
        text = capsys.readouterr().out
        assert "0 of 2 runs already finished (skipped); submitting 1" in text
        assert "1 run(s) in progress elsewhere, not submitted" in text and f"pid {holder.pid}" in text
    finally:
        holder.kill()
        holder.wait()
    assert skip.in_progress(run_dir) is None  # its process is gone


def test_an_array_starts_with_one_job_per_shared_original():
    from hydra_plugins.unlearn_bench_launchers.skip import leaders_first
    jobs = [[f"method={m}", f"seed={s}"] for s in (0, 1) for m in ("none", "ssd", "scrub")]
    jobs.append(["method=ssd", "method.alpha=5", "seed=2"])
    order = leaders_first(list(range(len(jobs))), jobs)
    assert order[:3] == [0, 3, 6] and sorted(order) == list(range(len(jobs)))
    assert [jobs[i] for i in order[3:]] == [jobs[1], jobs[2], jobs[4], jobs[5]]


@pytest.mark.parametrize("squeue, live", [("RUNNING", True), ("", False), ("CANCELLED", False)])
def test_a_run_on_another_node_counts_as_in_progress_while_its_job_does(tmp_path, monkeypatch, squeue, live):
    """A cancelled or killed job never releases its lock, and its node is not this one: squeue decides."""
    import json
    import time

    from hydra_plugins.unlearn_bench_launchers import skip
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "squeue").write_text(f"#!/bin/sh\necho '{squeue}'\n")
    (bindir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = {"pid": 1, "host": "node17", "since": time.time() - 100, "heartbeat": time.time() - 5,
              "slurm_job": "42_3"}
    (run_dir / ".run.lock.owner").write_text(json.dumps(record))
    assert (skip.in_progress(run_dir) is not None) == live
    record["heartbeat"] = time.time() - 200  # three heartbeats missed: gone, whatever squeue says
    (run_dir / ".run.lock.owner").write_text(json.dumps(record))
    assert skip.in_progress(run_dir) is None
