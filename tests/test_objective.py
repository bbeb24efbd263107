"""What a job returns to its sweeper: ``cfg.optimized_metric`` of its metrics.json (conf/config.yaml's
default, or ``gap/avg_to_retrain`` under experiment=tune), the configured failed value for a failed run, and
one error line before anything runs for a key no run writes. An Optuna study's output: one setup line, trial
folders named by what they tried, the study's best value taken from the trials' metrics.json; launchers
submit every trial, and a dry run of a study is refused."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from unlearn_bench import cli
from unlearn_bench.cli.closing import JOBS
from unlearn_bench.cli.objective import objective_value
from unlearn_bench.config import compose
from unlearn_bench.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("unlearn-bench"))
QUICK = ["data=digits", "model=mlp", "train.epochs=3", "progress=false"]  # 3 epochs: the CLI's cost


def _cli(args, tmp_path, cache_dir, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run([CLI, *args, f"runs_dir={tmp_path}", f"cache_dir={cache_dir}"], capture_output=True,
                          check=False, text=True, timeout=timeout, cwd=ROOT, env=env)


@pytest.fixture(autouse=True)
def _own_job_counts():
    """``cli.task`` counts the jobs of this process for a stopped sweep's line: leave others' counts alone."""
    saved = {k: (v.copy() if isinstance(v, (dict, list)) else v) for k, v in JOBS.items()}
    yield
    JOBS.clear()
    JOBS.update(saved)


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_a_job_returns_the_metric_its_config_names(digits_cfg, tmp_path):
    assert compose([]).optimized_metric == "acc/forget_train"  # what the CLI returned before it was a key
    cfg = digits_cfg("method=none", "optimized_metric=acc/retain_test", f"runs_dir={tmp_path}")
    value = cli.task(cfg, tmp_path / "run")
    m = _metrics(tmp_path / "run")
    assert m["status"] == "ok" and isinstance(value, float)
    assert value == m["acc/retain_test"] and value != m["acc/forget_train"]
    assert cli.task(cfg, tmp_path / "run") == value  # a finished run, skipped: the same value


def test_experiment_tune_returns_the_avg_gap_to_retrain(digits_cfg, tmp_path):
    cfg = digits_cfg("experiment=tune", "method=none", "train.epochs=3", f"runs_dir={tmp_path}")
    assert (cfg.optimized_metric, cfg.optimized_metric_failed_value) == ("gap/avg_to_retrain", 1.0)
    value = cli.task(cfg, tmp_path / "trial")
    m = _metrics(tmp_path / "trial")
    assert value == m["gap/avg_to_retrain"] and value != m["acc/forget_train"]


def test_a_failed_run_returns_the_configured_failed_value(caplog):
    tune = compose(["experiment=tune", "method=finetune"])
    assert objective_value(tune, {"status": "failed", "reason": "the loss diverged"}) == 1.0
    assert objective_value(tune, {"status": "ok", "gap/avg_to_retrain": 0.25}) == 0.25
    with caplog.at_level(logging.WARNING, logger="unlearn_bench"):  # eval.retrain=false: no gap
        assert objective_value(tune, {"status": "ok", "acc/forget_train": 0.0}) == 1.0
    assert "gap/avg_to_retrain" in caplog.text and "acc/forget_train" in caplog.text
    plain = compose([])  # no failed value configured: the sweeper gets nothing, as before
    assert objective_value(plain, {"status": "failed"}) is None
    assert objective_value(compose(["optimized_metric_failed_value=0"]), {"status": "failed"}) == 0.0


@pytest.mark.parametrize("overrides, fragment", [
    (["optimized_metric=acc/foget_train"], "did you mean acc/forget_train?"),
    (["optimized_metric=accuracy"], "optimized_metric=accuracy is not a key a run writes"),
    (["optimized_metric_failed_value=worst"], "optimized_metric_failed_value=worst is not a number"),
])
def test_an_objective_no_run_writes_is_one_line_before_anything_runs(overrides, fragment):
    with pytest.raises(ConfigError) as e:
        cli.preflight(["data=digits", "model=mlp", *overrides])
    assert fragment in str(e.value) and "\n" not in str(e.value) and "fix:" in str(e.value)


@pytest.mark.parametrize("key", ["mia/fr", "original/acc/retain_test", "mia/fr_std", "lra_npp/h",
                                 "finetune/final_loss"])
def test_every_key_runs_write_may_be_the_objective(key):
    cli.preflight(["data=digits", "model=mlp", f"optimized_metric={key}"])


def test_the_real_cli_refuses_an_unknown_objective_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "unlearn_bench.cli", "-m", "data=digits", "model=mlp",
                        "seed=0,1", "optimized_metric=acc/forget", f"runs_dir={tmp_path}/runs"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: optimized_metric=acc/forget is not a key a run writes")
    assert not (tmp_path / "runs").exists()


# -- an Optuna study's output: one setup line, trial folders named by what they tried -----------------------
TRIAL_SUBDIR = "trial${hydra:job.num}-${ub_params:}"


def test_drawn_params_name_a_trial_by_the_values_it_was_given():
    from hydra.core.hydra_config import HydraConfig

    from unlearn_bench.cli import drawn_params
    cfg = compose(["experiment=tune", "method=lra_npp", "hydra/sweeper=optuna_lra_npp",
                   "method.h_fraction=0.0123456", "method.rule=gamma", "seed=100"])
    HydraConfig.instance().set_config(cfg)
    try:  # only the search space's keys, in its order; k_fraction was not set, seed is not searched
        assert drawn_params() == "h_fraction=0.0123-rule=gamma"
        subdir = OmegaConf.create({"subdir": "trial7-${ub_params:}"}).subdir
        assert subdir == "trial7-h_fraction=0.0123-rule=gamma"
    finally:
        HydraConfig.instance().cfg = None
    assert drawn_params() == ""  # outside a Hydra job


def test_an_optuna_study_opens_with_one_line_and_its_trial_folder_names_its_values(tmp_path, cache_dir):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from hydra_plugins.unlearn_bench_launchers.skip import split_finished
    r = _cli(["-m", *QUICK, "experiment=tune", "method=lra_npp", "hydra/sweeper=optuna_lra_npp",
              "hydra.sweeper.n_trials=1", f"hydra.sweep.subdir={TRIAL_SUBDIR}"], tmp_path, cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    out = (r.stdout + r.stderr).splitlines()
    noise = ("setup plugin", "A new study created", "Study name:", "Storage:", "Sampler:")
    assert not [line for line in out if any(n in line for n in noise)]
    assert len([line for line in out if "optuna study" in line and "TPESampler" in line]) == 1
    study = tmp_path / "tune" / "digits-mlp" / "lra_npp"
    [trial] = [p.parent for p in study.rglob("metrics.json")]
    m = yaml.safe_load((trial / "config.yaml").read_text())["method"]
    assert trial.name == (f"trial0-h_fraction={m['h_fraction']:.3g}-k_fraction={m['k_fraction']:.3g}"
                          f"-rule={m['rule']}")
    assert out[-1] == f"next: unlearn-bench-report {study}"
    # the study saw the trial's cfg.optimized_metric, the Avg. Gap, as its value
    best = yaml.safe_load((study / "optimization_results.yaml").read_text())["best_value"]
    assert best == pytest.approx(_metrics(trial)["gap/avg_to_retrain"])
    # the folder still names the job number: launchers submit every trial, as before
    cfg = compose(["experiment=tune", "method=lra_npp", "hydra/sweeper=optuna_lra_npp",
                   f"hydra.sweep.subdir={TRIAL_SUBDIR}"])
    assert split_finished(cfg, None, [["a=1"], ["a=2"]], 0) == ([0, 1], {})


def test_launchers_submit_every_job_whose_folder_is_named_by_its_number():
    from hydra_plugins.unlearn_bench_launchers.skip import split_finished
    # Optuna trials live in trial<job.num>: nothing to look up before they are numbered (hydra_context unused)
    cfg = compose(["experiment=tune", "method=finetune", "hydra/sweeper=optuna_finetune"])
    assert split_finished(cfg, None, [["a=1"], ["a=2"]], 5) == ([0, 1], {})


def test_a_dry_run_of_an_optuna_study_is_refused_in_one_line(capsys):
    from types import SimpleNamespace

    from hydra_plugins.unlearn_bench_launchers.skip import launch_unfinished
    cfg = compose(["experiment=tune", "method=finetune", "hydra/sweeper=optuna_finetune"])
    launcher = SimpleNamespace(config=cfg, hydra_context=None)
    with pytest.raises(SystemExit) as e:
        launch_unfinished(launcher, [["a=1"]], 0, submit=lambda *a: pytest.fail("submitted"), dry_run=True)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: hydra.launcher.dry_run") and "fix:" in err


def test_a_job_skipped_as_finished_returns_its_runs_objective(tmp_path):
    """A relaunched sweep whose folders are not numbered gets each finished run's value from metrics.json,
    as the run itself would have returned it (a sweeper comparing the jobs sees no gap)."""
    from types import SimpleNamespace

    from hydra_plugins.unlearn_bench_launchers.skip import _finished_return
    cfg = compose(["data=digits", "optimized_metric=acc/retain_test"])
    calls = []
    ctx = SimpleNamespace(callbacks=SimpleNamespace(on_job_end=lambda **kw: calls.append(kw)))
    ret = _finished_return(ctx, cfg, ["seed=0"], tmp_path, 3, {"status": "ok", "acc/retain_test": 0.75})
    assert ret.return_value == 0.75 and len(calls) == 1
    tune = compose(["experiment=tune"])
    failed = _finished_return(ctx, tune, ["seed=0"], tmp_path, 4, {"status": "failed"})
    assert failed.return_value == 1.0  # the configured failed value
