"""Experiments: every config composes, every analyze.py turns a fixture of run directories into its figures
and tables (values checked against the fixture), and the statistics / figure helpers match scipy or hand
cases."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy import stats as sps

from unlearn_bench.config import compose
from unlearn_bench.report import figures, stats
from unlearn_bench.report.load import load
from unlearn_bench.report.summary import summarize

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
ANALYZED = sorted(p.parent.name for p in (ROOT / "experiments").glob("*/analyze.py"))
METHODS = {p.stem for p in (ROOT / "conf" / "method").glob("*.yaml")}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_config_composes(name):
    cfg = compose([f"experiment={name}"])
    assert cfg.name == name
    params = cfg.hydra.sweeper.get("params")
    params = OmegaConf.to_container(params) if params else {}
    for key, values in params.items():
        if key == "method":
            missing = sorted(set(values.split(",")) - METHODS)
            if missing:
                pytest.skip(f"{name} names methods without a config yet: {missing}")
        elif key.startswith("method."):  # the swept key must exist in the composed method
            assert key.split(".", 1)[1] in cfg.method, f"{name}: {key} is not a key of {cfg.method._target_}"


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n not in ("default", "tune")])
def test_every_experiment_has_readme_and_analysis(name):
    readme = (ROOT / "experiments" / name / "README.md").read_text()
    assert f"experiment={name}" in readme and "Claim" in readme
    assert name in ANALYZED


def _run(root: Path, method: str, forget: int, seed: int, metrics: dict, method_cfg: dict | None = None,
         sub: str = "", units: list[int] | None = None) -> None:
    d = root / (sub or "compare") / "digits-mlp" / method / f"forget{forget}-seed{seed}"
    d.mkdir(parents=True)
    m = {"status": "ok", "method": method, "data": "digits", "model": "mlp", "forget": str(forget),
         "seed": seed, "cost/unlearn_s": 0.5, "cost/peak_mem_mb": 100.0, "original/acc/forget_train": 1.0,
         "original/acc/retain_train": 1.0, "original/acc/retain_test": 0.97, **metrics}
    (d / "metrics.json").write_text(json.dumps(m))
    cfg = {"method": {"_target_": "x", "h": 40, "n": 36, "rule": "epsilon", **(method_cfg or {})},
           "forget": {"classes": [forget], "unseen": {"source": "holdout"}}}
    (d / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    np.savez(d / "predictions.npz", logits_forget_train=np.zeros((3, 10)))
    if units is not None:
        counts = [0] * 64
        for u in units:
            counts[u] = 30
        (d / "lra_npp.json").write_text(json.dumps({"n": 36, "layers": [
            {"units": units, "width": 64, "k": 10, "h": len(units), "counts": counts,
             "unit_counts": [30] * len(units)}]}))


@pytest.fixture(scope="module")
def fixture_runs(tmp_path_factory):
    """Plausible run directories, one subtree per experiment: none/retrain/lra_npp over 2 classes x 3 seeds
    (compare/), an H sweep (h5/, h40/) and LRP rules (rule-*/)."""
    root = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(0)
    for forget in (0, 1):
        for seed in range(3):
            base = {"acc/retain_train": 0.99, "acc/retain_test": 0.96, "mia/fr": 0.5, "mia/fs": 0.1}
            _run(root, "none", forget, seed, {**base, "acc/forget_train": 1.0})
            _run(root, "retrain", forget, seed, {**base, "acc/forget_train": 0.0, "mia/fr": 1.0,
                                                 "cost/unlearn_s": 30.0})
            for h in (5, 40):
                at = 0.9 if h == 5 else 0.02 + 0.01 * seed
                units = sorted(rng.choice(64, size=h // 5, replace=False).tolist()) if h == 40 \
                    else list(range(forget, forget + 1))
                _run(root, "lra_npp", forget, seed, {**base, "acc/forget_train": at, "mia/fr": 0.9},
                     {"h": h}, sub=f"h{h}", units=units)
            for rule, at in (("gamma", 0.3), ("alpha1_beta0", 0.5)):
                _run(root, "lra_npp", forget, seed, {**base, "acc/forget_train": at}, {"rule": rule},
                     sub=f"rule-{rule}")
    return root


def _analyze(name: str, argv: list[str]):
    spec = importlib.util.spec_from_file_location(f"analyze_{name}",
                                                  ROOT / "experiments" / name / "analyze.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(argv)


@pytest.mark.parametrize("name", ANALYZED)
def test_analyze_writes_figures(name, fixture_runs, tmp_path):
    _analyze(name, [str(fixture_runs), "--out", str(tmp_path)])
    pngs = list(tmp_path.rglob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs), name
    assert (tmp_path / "README_results.md").exists() or (tmp_path / "report.md").exists()


@pytest.mark.parametrize("name", ANALYZED)
def test_analyze_without_runs_says_so(name, tmp_path):
    with pytest.raises(SystemExit) as e:
        _analyze(name, [str(tmp_path / "empty"), "--out", str(tmp_path)])
    assert "no runs" in str(e.value) and f"experiment={name}" in str(e.value)


def test_h_sweep_table_matches_the_fixture(fixture_runs, tmp_path):
    _analyze("h_sweep", [str(fixture_runs / "h5"), "--out", str(tmp_path / "5")])  # a single H works
    only = tmp_path / "runs"
    for h in ("h5", "h40"):
        shutil.copytree(fixture_runs / h, only / h)
    _analyze("h_sweep", [str(only), "--out", str(tmp_path)])
    t = pd.read_csv(tmp_path / "table.csv")
    assert t["method"].iloc[0] == "Original" and t["n"].iloc[0] == 6  # one per (class, seed), pooled
    row = t[(t["method"] == "lra_npp") & (t["cfg/method.h"] == 40)].iloc[0]
    ats = [0.02, 0.03, 0.04] * 2  # two classes x three seeds
    assert row["n"] == 6 and row["acc/forget_train"] == f"{np.mean(ats):.3f} ± {np.std(ats, ddof=1):.3f}"
    smallest = pd.read_csv(tmp_path / "smallest.csv")
    assert smallest.iloc[:, 2].tolist() == [40, 40]  # H=5 leaves At at 0.9, H=40 is below chance (0.1)


def test_neuron_overlap_diagonal_is_stability(fixture_runs, tmp_path):
    _analyze("neuron_overlap", [str(fixture_runs), "--out", str(tmp_path)])
    s = pd.read_csv(tmp_path / "summary.csv").iloc[0]
    assert s["runs"] == 12 and s["classes"] == 2 and s["layer width"] == 64


def test_summarize_orders_original_retrain_first_and_counts_failed(fixture_runs):
    df = load(fixture_runs)
    failed = pd.DataFrame([{**df.iloc[0].to_dict(), "status": "failed", "seed": 9}])
    df = pd.concat([df, failed], ignore_index=True)
    t = summarize(df[(df["forget"] == "0") & df["run_dir"].str.contains("compare")], ["acc/forget_train"])
    assert t["method"].tolist() == ["Original", "retrain", "none"]  # the no-op last, as a control
    assert t.set_index("method").loc["none", "failed"] == 1
    assert t.set_index("method").loc["retrain", "acc/forget_train"] == "0.000 ± 0.000"


def test_paired_test_matches_scipy():
    rng = np.random.default_rng(1)
    b = rng.normal(size=12)
    a = b + 0.3 + rng.normal(scale=0.2, size=12)
    r = stats.paired_test(a, b)
    assert r["t_p"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert r["wilcoxon_p"] == pytest.approx(sps.wilcoxon(a, b).pvalue)
    assert r["ci_low"] < np.mean(a - b) < r["ci_high"] and r["ci_low"] > 0  # a clear shift: CI excludes 0
    same = stats.paired_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same["wilcoxon_p"] == 1.0 and np.isnan(same["t_p"]) and same["ci_low"] == same["ci_high"] == 0


def test_compare_to_reference_pairs_by_seed(fixture_runs):
    comp = stats.compare_to_reference(load(fixture_runs), ["acc/forget_train"], by=["cfg/method.h"])
    row = comp[(comp["method"] == "none")].iloc[0]
    assert row["n"] == 6 and row["mean_diff"] == pytest.approx(1.0)
    h40 = comp[(comp["method"] == "lra_npp") & (comp["cfg/method.h"] == 40)]
    # h40 holds the H sweep's 6 runs plus the 12 rule runs (default h); each pairs with its seed's retrain
    assert h40["n"].iloc[0] == 18


def test_pareto_front_hand_case():
    # (forget, retain): b dominates a; c trades off; d is dominated by c
    f = np.array([0.5, 0.1, 0.0, 0.2])
    r = np.array([0.9, 0.95, 0.8, 0.7])
    assert figures.pareto_front(f, r).tolist() == [2, 1]


def test_report_splits_swept_settings_and_takes_several_dirs(fixture_runs, tmp_path):
    from unlearn_bench.report.tables import write_report
    write_report([fixture_runs / "compare", fixture_runs / "h5", fixture_runs / "h40"], tmp_path / "results")
    t = pd.read_csv(tmp_path / "results.csv")
    # H differs between lra_npp runs of one class and seed: one row per H, never averaged together
    lra = t[(t["method"] == "lra_npp") & (t["forget"] == 0)]
    assert sorted(lra["cfg/method.h"]) == [5, 40] and (lra["n"] == 3).all()
    assert t[t["forget"] == 0]["method"].tolist() == ["Original", "retrain", "lra_npp", "lra_npp", "none"]
    assert "![forget vs retain" in (tmp_path / "report.md").read_text()


def test_retrain_cost_is_its_training_time_when_cached(tmp_path):
    _run(tmp_path, "retrain", 0, 0, {"acc/forget_train": 0.0, "cost/unlearn_s": 0.1, "retrain/train_s": 28.7})
    df = load(tmp_path)
    assert df.loc[0, "cost/unlearn_s"] == 28.7 and df.loc[0, "cost/unlearn_s_measured"] == 0.1


def test_a_repeated_run_counts_once_and_settings_stay_apart(tmp_path):
    import os
    for sub in ("first", "again"):  # the same oracle under two sweep names
        _run(tmp_path, "retrain", 0, 0, {"acc/forget_train": 0.0 if sub == "again" else 0.5}, sub=sub)
    os.utime(tmp_path / "again" / "digits-mlp" / "retrain" / "forget0-seed0" / "metrics.json", (2e9, 2e9))
    for h in (5, 40):
        _run(tmp_path, "lra_npp", 0, 0, {"acc/forget_train": 0.1}, {"h": h, "k": None}, sub=f"h{h}")
    _run(tmp_path, "finetune", 0, 0, {"acc/forget_train": 0.3}, {"lr": 0.01}, sub="first")  # blanks elsewhere
    df = load(tmp_path)
    assert df.attrs["repeats"] == 1 and len(df) == 4
    assert df[df["method"] == "retrain"]["acc/forget_train"].tolist() == [0.0]  # the newest is kept
    assert sorted(df[df["method"] == "lra_npp"]["cfg/method.h"]) == [5, 40]


def test_sweep_table_counts_failed_runs_and_keeps_settings_that_all_failed(tmp_path):
    from unlearn_bench.report.sweeps import sweep_report
    for seed in (0, 1):
        _run(tmp_path, "lra_npp", 0, seed, {"acc/forget_train": 0.05}, {"h": 40}, sub="h40")
        _run(tmp_path, "lra_npp", 0, seed, {"status": "failed"}, {"h": 80}, sub="h80")
    _run(tmp_path, "lra_npp", 0, 2, {"status": "failed"}, {"h": 40}, sub="h40")
    out = tmp_path / "out"
    out.mkdir()
    sweep_report(load(tmp_path), "cfg/method.h", out, "H")
    t = pd.read_csv(out / "table.csv").set_index("cfg/method.h")
    assert t.loc[40, "n"] == 2 and t.loc[40, "failed"] == 1
    assert t.loc[80, "n"] == 0 and t.loc[80, "failed"] == 2
    smallest = pd.read_csv(out / "smallest.csv", dtype=str)
    assert smallest["H with failed runs"].tolist() == ["40, 80"]


def _quick_check_overrides(name: str) -> list[str]:
    """The grid a README's digits quick check names: the backticked overrides after "e.g."."""
    import re
    import shlex
    text = " ".join((ROOT / "experiments" / name / "README.md").read_text().split())
    m = re.search(r"Quick check on the bundled digits.*?`(data=digits[^`]*)`.*?e\.g\. `([^`]*)`", text)
    assert m, f"{name}: README has no digits quick check"
    return shlex.split(m.group(1)) + shlex.split(m.group(2))


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n not in ("default", "tune")])
def test_readme_quick_check_is_a_valid_sweep(name):
    """The documented digits check passes the multirun check (every job valid) before anything trains."""
    from unlearn_bench.cli.sweep_check import check_sweep
    from unlearn_bench.run.validate import validate_config
    args = [f"experiment={name}", *_quick_check_overrides(name)]
    if check_sweep(args) == 0:  # a one-job grid: the sweep check leaves it to the run, so validate it here
        validate_config(compose(args))


def test_make_run_digits_fallback_is_a_valid_sweep():
    import re

    from unlearn_bench.cli.sweep_check import check_sweep
    fallback = re.search(r"^DIGITS_FALLBACK := (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    assert "data=digits" in fallback
    assert check_sweep(["experiment=default", *fallback]) >= 1


def test_a_finished_run_is_kept_over_a_newer_failed_repeat(tmp_path):
    import os
    _run(tmp_path, "finetune", 0, 0, {"acc/forget_train": 0.2}, sub="a")
    _run(tmp_path, "finetune", 0, 0, {"status": "failed"}, sub="b")
    os.utime(tmp_path / "b" / "digits-mlp" / "finetune" / "forget0-seed0" / "metrics.json", (2e9, 2e9))
    df = load(tmp_path)
    assert len(df) == 1 and df["status"].tolist() == ["ok"]
