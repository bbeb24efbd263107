import pandas as pd

from unlearn_bench.report.summary import summarize


def _row(method, status="ok", seed=0, **m):
    return {"data": "digits", "model": "mlp", "forget": "3", "method": method, "seed": seed, "status": status,
            "setup": "s1", **m}


def test_failed_only_method_keeps_a_row_and_failures_are_not_averaged():
    df = pd.DataFrame([
        _row("none", **{"acc/forget_train": 1.0, "original/acc/forget_train": 1.0}),
        _row("none", seed=1, **{"acc/forget_train": 0.8, "original/acc/forget_train": 0.8}),
        _row("grad_ascent", status="failed"),
        _row("finetune", **{"acc/forget_train": 0.2, "original/acc/forget_train": 1.0}),
        _row("finetune", status="failed", seed=1),
    ])
    t = summarize(df, columns=["acc/forget_train"]).set_index("method")
    assert list(t.index[:1]) == ["Original"]
    assert t.loc["grad_ascent", "n"] == 0 and t.loc["grad_ascent", "failed"] == 1
    assert t.loc["finetune", "n"] == 1 and t.loc["finetune", "failed"] == 1
    assert t.loc["finetune", "acc/forget_train"] == "0.200"
    # `none` equals its original: it is the Original row, shown once (mean ± sample std over the 2 seeds)
    assert "none" not in t.index and t.loc["Original", "n"] == 2
    assert t.loc["Original", "acc/forget_train"] == "0.900 ± 0.141"


def test_a_cell_with_missing_values_says_how_many_runs_it_averages():
    df = pd.DataFrame([_row("none", seed=s, **{"mia/fr": v, "acc/forget_train": 1.0}) for s, v in
                       enumerate([0.9, float("nan"), float("nan")])])
    t = summarize(df, columns=["mia/fr", "acc/forget_train"]).set_index("method")
    assert t.loc["none", "n"] == 3 and t.loc["none", "mia/fr"] == "0.900 (n=1)"
    assert t.loc["none", "acc/forget_train"] == "1.000 ± 0.000"


def test_report_on_a_missing_folder_says_so(tmp_path):
    import pytest

    from unlearn_bench.report.tables import write_report
    with pytest.raises(SystemExit) as e:
        write_report(tmp_path / "nope")
    assert "nope is not a folder" in str(e.value) and "fix:" in str(e.value)


def test_report_md_adds_a_reference_model_table_only_when_runs_have_full_eval_metrics(tmp_path):
    from unlearn_bench.report.markdown import markdown_report
    fast = pd.DataFrame([_row(m, **{"acc/forget_train": 0.5, "original/acc/forget_train": 1.0})
                         for m in ("retrain", "lra_npp")])
    md = markdown_report(fast, tmp_path / "fast", figures=False)
    assert "klom/forget_mean" not in md and "Reference-model metrics" not in md
    full = fast.assign(**{"klom/forget_mean": [5.7, 11.5], "fq/forgetting_quality": [0.2, 0.0],
                          "eval/klom_null_mean": 5.64, "eval/fq_runs": 10})
    md = markdown_report(full, tmp_path / "full", figures=False)
    section = md.split("Reference-model metrics", 1)[1].split("\n\n## ", 1)[0]
    assert "5.64 at N = 10" in section and "| klom/forget_mean" not in md.split("Reference-model")[0]
    rows = {line.split("|")[4].strip(): line for line in section.splitlines() if line.startswith("| digits")}
    assert set(rows) == {"retrain", "lra_npp"}  # no Original row: these metrics exist for unlearned models
    assert [float(c) for c in rows["lra_npp"].split("|")[-3:-1]] == [0.0, 11.5]
    assert [float(c) for c in rows["retrain"].split("|")[-3:-1]] == [0.2, 5.7]


def test_report_md_draws_per_example_klom_when_runs_saved_it(tmp_path):
    import numpy as np

    from unlearn_bench.report.markdown import markdown_report
    rows = []
    for i, (m, centre) in enumerate((("retrain", 5.6), ("lra_npp", 10.5))):
        d = tmp_path / "runs" / m
        d.mkdir(parents=True)
        rng = np.random.default_rng(i)
        np.savez(d / "predictions.npz", klom_forget=rng.normal(centre, 1, 40),
                 klom_retain=rng.normal(6, 1, 90))
        rows.append(_row(m, run_dir=str(d), **{"klom/forget_mean": centre, "eval/klom_null_mean": 5.64,
                                               "eval/fq_runs": 10, "acc/forget_train": 0.0,
                                               "acc/retain_test": 0.9, "original/acc/forget_train": 1.0,
                                               "original/acc/retain_test": 0.9}))
    md = markdown_report(pd.DataFrame(rows), tmp_path / "out")
    assert "![per-example KLOM, digits / mlp](klom-digits-mlp.png)" in md
    assert (tmp_path / "out" / "klom-digits-mlp.png").stat().st_size > 5000
    # without saved arrays (older runs, eval=fast) there is no such figure
    plain = pd.DataFrame([{**r, "run_dir": str(tmp_path / "nowhere")} for r in rows])
    assert "klom-" not in markdown_report(plain, tmp_path / "out2")


def test_klom_figure_keeps_forget_sets_apart_and_survives_a_damaged_file(tmp_path, monkeypatch):
    import numpy as np

    from unlearn_bench.report import figures
    from unlearn_bench.report.markdown import _klom_figure
    rows = []
    for forget in ("3", "5"):
        d = tmp_path / forget
        d.mkdir()
        np.savez(d / "predictions.npz", klom_forget=np.full(4, float(forget)))
        rows.append({**_row("lra_npp", run_dir=str(d)), "forget": forget})
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "predictions.npz").write_text("not a zip")
    rows.append(_row("retrain", run_dir=str(bad)))
    seen = {}
    monkeypatch.setattr(figures, "klom_boxes", lambda per, null, path, title: seen.update(per))
    assert _klom_figure(pd.DataFrame(rows), tmp_path / "k.png", "t")
    assert {k: v["forget"].tolist() for k, v in seen.items()} == {"lra_npp forget=3": [3.0] * 4,
                                                                  "lra_npp forget=5": [5.0] * 4}


def _seeds(method, seeds=(0,), mseeds=(0,), **metrics):
    """One row per (seed, method seed); a metric given as a callable gets (seed, method seed)."""
    return [_row(method, seed=s, method_seed=m,
                 **{k: v(s, m) if callable(v) else v for k, v in metrics.items()})
            for s in seeds for m in mseeds]


def test_cells_carry_the_draw_spread_beside_the_spread_over_runs():
    import numpy as np
    df = pd.DataFrame(_seeds("salun", seeds=(0, 1), **{"mia/fr": lambda s, m: 0.4 + 0.2 * s,
                                                       "mia/fr_std": lambda s, m: 0.3 if s else 0.4}))
    t = summarize(df, columns=["mia/fr"]).set_index("method")
    rms = np.sqrt((0.3 ** 2 + 0.4 ** 2) / 2)  # pooled within-run std over draws
    assert t.loc["salun", "mia/fr"] == f"0.500 ± 0.141 (draws ± {rms:.3f})"
    one = summarize(pd.DataFrame(_seeds("salun", **{"mia/fr": 0.4, "mia/fr_std": 0.1})), ["mia/fr"])
    assert one.set_index("method").loc["salun", "mia/fr"].startswith("0.400 (draws ± 0.100)")


def test_a_row_within_noise_of_retrain_is_marked_and_one_run_without_draws_is_not():
    df = pd.DataFrame(
        _seeds("retrain", seeds=(0, 1), **{"mia/fr": lambda s, m: 0.90 + 0.02 * s, "mia/fr_std": 0.05,
                                            "acc/forget_train": 0.0})
        + _seeds("near", seeds=(0, 1), **{"mia/fr": lambda s, m: 0.80 + 0.02 * s, "mia/fr_std": 0.05,
                                          "acc/forget_train": lambda s, m: 0.01 * s})
        + _seeds("far", seeds=(0, 1), **{"mia/fr": 0.2, "mia/fr_std": 0.01, "acc/forget_train": 0.5}))
    t = summarize(df, columns=["mia/fr", "acc/forget_train"]).set_index("method")
    # near: |0.81 - 0.91| = 0.10 <= sqrt(2 x (0.0141^2 + 0.05^2)) = 0.073? no: 0.10 > 0.073, not marked
    assert "≈R" not in t.loc["near", "mia/fr"] and "≈R" not in t.loc["far", "mia/fr"]
    assert "≈R" in t.loc["near", "acc/forget_train"]  # 0.005 ± 0.007 against 0 ± 0: within
    assert "≈R" not in t.loc["retrain", "mia/fr"]
    wide = df.assign(**{"mia/fr_std": 0.1})  # sqrt(2 x (0.0141^2 + 0.1^2)) = 0.143 >= 0.10
    assert "≈R" in summarize(wide, columns=["mia/fr"]).set_index("method").loc["near", "mia/fr"]
    # the value is a mean over R = 25 draws: its draw noise is 0.1 / 5, sqrt(2 x (0.0141^2 + 0.02^2)) = 0.035
    averaged = summarize(wide.assign(**{"eval/mia_draws": 25}), columns=["mia/fr"]).set_index("method")
    assert averaged.loc["near", "mia/fr"] == "0.810 ± 0.014 (draws ± 0.100)"  # the cell shows one draw's std
    at = "acc/forget_train"
    single = pd.DataFrame(_seeds("retrain", **{at: 0.0}) + _seeds("x", **{at: 0.0}))
    assert summarize(single, columns=[at]).set_index("method").loc["x", at] == "0.000"
    # one run against a Retrain row that has a spread: still no measured spread of its own, so no mark
    one = pd.DataFrame(_seeds("retrain", seeds=(0, 1), **{"acc/forget_train": lambda s, m: 0.05 * s})
                       + _seeds("x", **{"acc/forget_train": 0.03}))
    assert summarize(one, columns=[at]).set_index("method").loc["x", at] == "0.030"


def test_original_rows_keep_the_runs_number_of_attack_draws():
    from unlearn_bench.report.summary import _original_rows
    df = pd.DataFrame(_seeds("lra_npp", seeds=(0, 1), **{"original/mia/fr": 0.1, "original/mia/fr_std": 0.3,
                                                         "eval/mia_draws": 50}))
    orig = _original_rows(df, ["data", "model", "forget"])
    assert (orig["eval/mia_draws"] == 50).all() and (orig["method"] == "Original").all()


def test_the_original_appears_once_unless_none_differs_from_it():
    orig = {"original/acc/forget_train": 1.0, "original/acc/retain_test": 0.9}
    same = pd.DataFrame(_seeds("none", seeds=(0, 1), mseeds=(0, 1), **{"acc/forget_train": 1.0,
                                                                      "acc/retain_test": 0.9, **orig})
                        + _seeds("lra_npp", seeds=(0, 1), **{"acc/forget_train": 0.0, "acc/retain_test": 0.8,
                                                             **orig}))
    t = summarize(same, columns=["acc/forget_train", "acc/retain_test"])
    assert t["method"].tolist() == ["Original", "lra_npp"]
    assert t.set_index("method").loc["Original", "n"] == 2  # one per seed, whatever the method seeds
    differs = same.assign(**{"acc/retain_test": [0.7] * 4 + [0.8] * 2})
    t = summarize(differs, columns=["acc/forget_train", "acc/retain_test"])
    # a no-op that changed the model: a control
    assert t["method"].tolist() == ["Original", "lra_npp", "none"]


def test_method_seeds_count_as_runs_in_the_table_and_once_per_seed_in_the_paired_test():
    from unlearn_bench.report import stats
    df = pd.DataFrame(
        _seeds("retrain", seeds=(0, 1, 2), mseeds=(0, 1), **{"acc/forget_train": lambda s, m: 0.01 * s})
        + _seeds("lra_npp", seeds=(0, 1, 2), mseeds=(0, 1, 2),
                 **{"acc/forget_train": lambda s, m: 0.1 * s + 0.01 * m})
    ).assign(**{"cfg/method.h": float("nan")})  # a setting no run has: blank keys still group
    assert summarize(df, columns=["acc/forget_train"]).set_index("method").loc["lra_npp", "n"] == 9
    comp = stats.compare_to_reference(df, ["acc/forget_train"]).set_index("method").loc["lra_npp"]
    # per seed: lra_npp averages its 3 method seeds (0.1 s + 0.01), retrain its 2 (0.01 s)
    assert comp["n"] == 3 and abs(comp["mean_diff"] - (0.09 + 0.01)) < 1e-12


def test_one_pair_prints_no_spread_instead_of_a_ci_and_tests():
    from unlearn_bench.report import stats
    df = pd.DataFrame(_seeds("retrain", **{"acc/forget_train": 0.0})
                      + _seeds("ssd", **{"acc/forget_train": 0.8}))
    comp = stats.compare_to_reference(df, ["acc/forget_train"])
    cells = stats.format_comparison(comp).iloc[0]
    assert cells["diff (95% CI)"] == "+0.800 (n = 1: no spread)"
    assert cells["t-test p"] == cells["Wilcoxon p"] == "—" and "[" not in cells["diff (95% CI)"]
    two = pd.DataFrame(_seeds("retrain", seeds=(0, 1), **{"acc/forget_train": 0.0})
                       + _seeds("ssd", seeds=(0, 1), **{"acc/forget_train": lambda s, m: 0.8 + 0.1 * s}))
    comp = stats.compare_to_reference(two, ["acc/forget_train"])
    assert "[" in stats.format_comparison(comp).iloc[0]["diff (95% CI)"]


def test_every_pareto_point_is_one_table_row_with_the_same_n(tmp_path):
    from unlearn_bench.report import figures
    from unlearn_bench.report.summary import pareto_runs
    orig = {"original/acc/forget_train": 1.0, "original/acc/retain_test": 0.9}
    rows = []
    for forget in ("0", "1"):
        rows += [{**r, "forget": forget} for r in
                 _seeds("none", seeds=(0, 1), **{"acc/forget_train": 1.0, "acc/retain_test": 0.9, **orig})
                 + _seeds("retrain", seeds=(0, 1),
                          **{"acc/forget_train": 0.0, "acc/retain_test": 0.9, **orig})
                 + _seeds("ssd", seeds=(0, 1), mseeds=(0, 1, 2),
                          **{"acc/forget_train": 0.0, "acc/retain_test": 0.8, **orig})]
        for h in (5, 40):  # a swept setting: one row per value
            rows += [{**r, "forget": forget, "cfg/method.h": h} for r in
                     _seeds("lra_npp", seeds=(0, 1), mseeds=(0, 1), **{"acc/forget_train": 0.0,
                                                                       "acc/retain_test": 0.8, **orig})]
    df = pd.DataFrame(rows)
    table = summarize(df, columns=["acc/forget_train", "acc/retain_test"], by=["cfg/method.h"])
    want = {f"{r.method} forget={r.forget}"
            + (f" h={int(r['cfg/method.h'])}" if r["cfg/method.h"] != "" else ""): r.n
            for _, r in table.iterrows()}
    points = figures.pareto_points(pareto_runs(df, ["cfg/method.h"]), label="_label")
    assert points["n"].to_dict() == want
    assert want["ssd forget=0"] == 6 and want["Original forget=1"] == 2 and want["lra_npp forget=0 h=40"] == 4
    png = figures.pareto(pareto_runs(df, ["cfg/method.h"]), tmp_path / "p.png", label="_label")
    assert png.stat().st_size > 1000


def test_a_row_left_at_the_originals_forget_accuracy_is_marked_as_not_forgetting():
    """≈O: within noise of the Original's forget accuracy, an accuracy over N examples counting as N draws
    (√(p(1 − p) / N) of noise), so one run is judged too."""
    import math
    orig = {"original/acc/forget_train": 0.937, "examples/forget_train": 270}
    df = pd.DataFrame([_row(m, **{"acc/forget_train": v, **orig}) for m, v in
                       (("ssd", 0.937), ("jit", 0.885), ("near", 0.92), ("lra_npp", 0.0), ("up", 0.99))])
    t = summarize(df, columns=["acc/forget_train"]).set_index("method")["acc/forget_train"]
    noise = math.sqrt(0.92 * 0.08 / 270 + 0.937 * 0.063 / 270)  # 0.022 against a difference of 0.017
    assert abs(0.92 - 0.937) < noise < abs(0.885 - 0.937)
    assert t["ssd"] == "0.937 ≈O" and t["near"] == "0.920 ≈O"
    assert t["jit"] == "0.885" and t["lra_npp"] == "0.000" and t["Original"] == "0.937"
    assert t["up"] == "0.990"  # above the Original beyond noise: not at it (and no forgetting either)
    # without N and without runs, only the Original's own value (to 3 decimals) is "the same"
    bare = df.drop(columns=["examples/forget_train"])
    t = summarize(bare, columns=["acc/forget_train"]).set_index("method")["acc/forget_train"]
    assert t["ssd"] == "0.937 ≈O" and t["near"] == "0.920"
    # over seeds, the spread of the runs counts as for ≈R
    seeds = pd.DataFrame([_row(m, seed=s, **{"acc/forget_train": v + 0.05 * s, "original/acc/forget_train":
                                             0.95 + 0.02 * s}) for m, v in (("ft", 0.91), ("ga", 0.3))
                          for s in (0, 1)])
    t = summarize(seeds, columns=["acc/forget_train"]).set_index("method")["acc/forget_train"]
    assert t["ft"].endswith("≈O") and not t["ga"].endswith("≈O")
