"""Expected against found runs: a multirun records every job Hydra's basic sweeper will launch (or an Optuna
trial count), and the report counts them per table row and says why each missing one is missing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from unlearn_bench.report import launches as lx
from unlearn_bench.report.expected import read
from unlearn_bench.report.jobs import RUNNING, STOPPED
from unlearn_bench.report.load import load
from unlearn_bench.report.markdown import markdown_report
from unlearn_bench.report.summary import summarize

ROOT = Path(__file__).resolve().parent.parent
BASE = ["experiment=default", "data=digits"]


def _multirun_config(overrides: list[str]):
    """The config Hydra hands ``on_multirun_start`` for ``unlearn-bench -m <overrides>``."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from unlearn_bench.cli import CONFIG_DIR
    GlobalHydra.instance().clear()
    init = initialize_config_dir(CONFIG_DIR, version_base="1.3")
    init.__enter__()
    try:
        loader = GlobalHydra.instance().config_loader()
        return loader.load_configuration("config", overrides, RunMode.MULTIRUN)
    finally:
        init.__exit__(None, None, None)


def test_every_multirun_gets_the_callback():
    cfg = _multirun_config(BASE)
    assert cfg.hydra.callbacks.launches._target_ == "unlearn_bench.report.launches.RecordLaunch"
    tune = _multirun_config(["experiment=tune", "method=finetune", "hydra/sweeper=optuna_finetune"])
    # the objective is a config key (cfg.optimized_metric), not a callback of its own
    assert set(tune.hydra.callbacks) == {"launches"} and tune.optimized_metric == "gap/avg_to_retrain"


def test_the_record_lists_the_jobs_as_the_basic_sweeper_expands_them(tmp_path):
    cfg = _multirun_config([*BASE, f"runs_dir={tmp_path}", "method=none,retrain", "seed=0,1"])
    lx.RecordLaunch().on_multirun_start(config=cfg)
    (rec,) = (tmp_path / "default" / ".launches").glob("*-*.json")
    data = json.loads(rec.read_text())
    # the experiment's method list (hydra.sweeper.params) comes first and the command line's replaces it in
    # its place; the other keys follow in command-line order, the last one varying fastest
    tail = ["experiment=default", "data=digits", f"runs_dir={tmp_path}"]
    assert data["jobs"] == [[f"method={m}", *tail, f"seed={s}"] for m in ("none", "retrain") for s in (0, 1)]
    assert data["sweeper"].endswith("BasicSweeper") and data["trials"] is None
    whole = _multirun_config([*BASE, f"runs_dir={tmp_path / 'all'}"])
    lx.RecordLaunch().on_multirun_start(config=whole)
    (rec,) = (tmp_path / "all" / "default" / ".launches").glob("*.json")
    methods = cfg.hydra.sweeper.params.method.split(",")
    assert [j[0] for j in json.loads(rec.read_text())["jobs"]] == [f"method={m}" for m in methods]


def test_another_sweeper_records_its_trial_count(tmp_path):
    cfg = _multirun_config(["experiment=tune", "method=finetune", "hydra/sweeper=optuna_finetune",
                            f"runs_dir={tmp_path}"])
    lx.RecordLaunch().on_multirun_start(config=cfg)
    (rec,) = tmp_path.glob("**/.launches/*.json")
    data = json.loads(rec.read_text())
    assert data["jobs"] is None and data["trials"] == cfg.hydra.sweeper.n_trials == 24


def _job(sweep: Path, method: str, seed: int, metrics: dict | None, extra: tuple = (), folder: bool = True):
    """A run folder as a job leaves it: .hydra/overrides.yaml, and metrics.json when it ended."""
    overrides = [f"method={method}", *extra, f"seed={seed}"]
    if folder:
        d = sweep / "digits-mlp" / method / f"forget3-seed{seed}"
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        if metrics is not None:
            orig = {"original/acc/forget_train": 1.0, "original/acc/retain_test": 0.95}
            m = {"data": "digits", "model": "mlp", "forget": "3", "seed": seed, "method": method,
                 "setup": "s", "status": "ok", "acc/forget_train": 1.0 if method == "none" else 0.0,
                 "acc/retain_test": 0.95, **orig, **metrics}
            (d / "metrics.json").write_text(json.dumps(m))
    return overrides


def _sweep(tmp_path: Path) -> Path:
    """One launch of 4 methods x 2 seeds plus lra_npp's seeds 2 and 4: finished and failed runs, a stopped
    one, one ended by an error, a job that never started, and a method none of whose jobs started."""
    sweep = tmp_path / "runs" / "default"
    jobs = [_job(sweep, "none", 0, {}), _job(sweep, "none", 1, {}),
            _job(sweep, "lra_npp", 0, {}),
            _job(sweep, "lra_npp", 1, {"status": "failed", "reason": "diverged"}),
            _job(sweep, "lra_npp", 2, None),                    # started, killed before metrics.json
            _job(sweep, "lra_npp", 4, None),                    # ended by an error it recorded
            _job(sweep, "retrain", 0, {}), _job(sweep, "retrain", 1, None, folder=False),
            _job(sweep, "ssd", 0, None, folder=False), _job(sweep, "ssd", 1, None, folder=False)]
    (sweep / "digits-mlp" / "lra_npp" / "forget3-seed4" / "failed.json").write_text(json.dumps(
        {"status": "failed", "reason": "out of memory; fix: lower the batch size"}))
    (sweep / ".launches").mkdir(parents=True)
    (sweep / ".launches" / "20260101T000000Z-1.json").write_text(json.dumps({"jobs": jobs, "trials": None}))
    return sweep


def test_table_rows_count_expected_and_found_and_missing_runs_say_why(tmp_path):
    sweep = _sweep(tmp_path)
    df = load(sweep)
    t = summarize(df, ["acc/forget_train"]).set_index("method")
    assert list(t.columns[:6]) == ["data", "model", "forget", "n", "failed", "expected"]
    assert t.columns[6] == "found"
    got = {m: (t.loc[m, "n"], t.loc[m, "failed"], t.loc[m, "expected"], t.loc[m, "found"]) for m in t.index}
    assert got == {"Original": (2, 0, 2, 2),      # the none jobs: their runs are the original
                   "retrain": (1, 0, 2, 1),       # seed 1 never started: the row is its seed 0's
                   "lra_npp": (1, 1, 4, 2),       # failed counts as found; stopped and errored runs do not
                   "ssd": (0, 0, 2, 0)}           # nothing of it started: a row of its own, not hidden
    assert t.loc["ssd", "acc/forget_train"] == "—"
    md = markdown_report(df, tmp_path / "out", figures=False)
    missing = md.split("## Missing runs", 1)[1]
    assert "5 of 10 runs" in missing
    lines = {ln.split("`")[1]: ln for ln in missing.splitlines() if ln.startswith("- `")}
    started = ("method=lra_npp seed=2", "method=lra_npp seed=4")
    assert set(lines) == {*started, "method=retrain seed=1", "method=ssd seed=0", "method=ssd seed=1"}
    assert "stopped" in lines[started[0]] and "lra_npp/forget3-seed2" in lines[started[0]]
    assert "ended by an error: out of memory; fix: lower the batch size" in lines[started[1]]
    assert all("never started" in lines[k] for k in lines if k not in started)


def test_a_run_holding_its_lock_is_running_not_stopped(tmp_path):
    from unlearn_bench.run.locks import OwnedLock
    sweep = _sweep(tmp_path)
    with OwnedLock(sweep / "digits-mlp" / "lra_npp" / "forget3-seed2" / ".run.lock", "run"):  # as run_lock
        job = next(j for j in read([sweep]).jobs if j.overrides == ["method=lra_npp", "seed=2"])
        assert job.state == RUNNING
    assert next(j for j in read([sweep]).jobs if j.overrides == ["method=lra_npp", "seed=2"]).state == STOPPED


def test_a_folder_rerun_under_other_overrides_still_answers_for_the_first_list(tmp_path):
    sweep = _sweep(tmp_path)
    folder = sweep / "digits-mlp" / "none" / "forget3-seed0"
    lx.note_job(folder, ["method=none", "seed=0"])
    rerun = ["method=none", "seed=0", "eval.seed=0"]
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(rerun))
    lx.note_job(folder, ["method=none", "seed=0", "eval.seed=0"])
    rec = sweep / ".launches" / "20260102T000000Z-2.json"
    rec.write_text(json.dumps({"jobs": [["method=none", "seed=0", "eval.seed=0"]]}))
    t = summarize(load(sweep), ["acc/forget_train"]).set_index("method")
    assert (t.loc["Original", "expected"], t.loc["Original", "found"]) == (2, 2)  # one run, listed twice


def test_without_records_the_table_keeps_its_layout(tmp_path):
    sweep = _sweep(tmp_path)
    for p in (sweep / ".launches").iterdir():
        p.unlink()
    t = summarize(load(sweep), ["acc/forget_train"])
    assert "expected" not in t.columns and "found" not in t.columns


def _cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unlearn_bench.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_real_launches_into_one_folder_find_every_run(tmp_path):
    """`make run`'s shape on digits: a sweep, then method seeds of one method into the same folder. Every
    run folder's overrides.yaml is one of the recorded lists, and every row has expected == found == n."""
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(tmp_path / "cache"), "UNLEARN_BENCH_SWEEP_CHECK": "0"}
    common = ["data=digits", "model=mlp", "forget.classes=[3]", f"runs_dir={tmp_path / 'runs'}",
              "progress=false"]
    for extra in (["method=none,lra_npp"], ["method=lra_npp", "method_seed=1,2"]):
        r = _cli(["-m", *common, *extra], env)
        assert r.returncode == 0, r.stderr[-2000:]
    sweep = tmp_path / "runs" / "adhoc"
    recorded = [j for p in sorted((sweep / ".launches").glob("*.json"))
                for j in json.loads(p.read_text())["jobs"]]
    folders = [yaml.safe_load(p.read_text()) for p in sweep.glob("**/.hydra/overrides.yaml")]
    assert len(recorded) == len(folders) == 4 and sorted(map(tuple, folders)) == sorted(map(tuple, recorded))
    t = summarize(load(sweep), ["acc/forget_train"])
    assert t["method"].tolist() == ["Original", "lra_npp"]
    assert (t["expected"] == t["n"]).all() and (t["found"] == t["n"]).all() and t["n"].tolist() == [1, 3]


def test_relaunches_of_one_study_count_its_trial_folders_once(tmp_path):
    import yaml
    sweep = tmp_path / "tune" / "digits-mlp" / "finetune"
    for i in range(30):  # launch 1 stopped after 10 trials, launch 2 has finished 20 of its 24 so far
        d = sweep / f"trial{i}"
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"method.lr={i}"]))
        (d / "metrics.json").write_text(json.dumps({"status": "ok", "method": "finetune", "data": "digits",
                                                    "model": "mlp", "forget": "9", "seed": 100}))
    (sweep / ".launches").mkdir()
    for n in (1, 2):
        (sweep / ".launches" / f"2026010{n}T000000Z-{n}.json").write_text(
            json.dumps({"jobs": None, "trials": 24, "sweeper": "optuna"}))
    found = read([sweep])
    assert found.totals() == (48, 30)
    assert any("30 run folders" in line for line in found.missing_lines())


def test_the_original_row_counts_one_run_per_seed_whatever_the_method_seeds(tmp_path):
    import yaml

    sweep = tmp_path / "runs" / "adhoc"
    jobs = []
    for method in ("none", "lra_npp"):
        for ms in (0, 1, 2):
            ov = [f"method={method}", "seed=0", f"method_seed={ms}"]
            d = sweep / "digits-mlp" / method / f"forget3-seed0-mseed{ms}"
            (d / ".hydra").mkdir(parents=True)
            (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(ov))
            m = {"data": "digits", "model": "mlp", "forget": "3", "seed": 0, "method_seed": ms,
                 "method": method, "setup": "s", "status": "ok",
                 "acc/forget_train": 1.0 if method == "none" else 0.1 * ms, "acc/retain_test": 0.95,
                 "original/acc/forget_train": 1.0, "original/acc/retain_test": 0.95}
            (d / "metrics.json").write_text(json.dumps(m))
            jobs.append(ov)
    (sweep / ".launches").mkdir(parents=True)
    (sweep / ".launches" / "20260101T000000Z-1.json").write_text(json.dumps({"jobs": jobs, "trials": None}))
    table = summarize(load(sweep), ["acc/forget_train"]).set_index("method")
    for row in ("Original", "lra_npp"):
        assert table.loc[row, "expected"] == table.loc[row, "found"] == table.loc[row, "n"], table
    assert table.loc["Original", "n"] == 1 and table.loc["lra_npp", "n"] == 3
