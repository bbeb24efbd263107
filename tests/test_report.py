import pandas as pd

from unlearn_bench.report import summarize


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
    assert t.loc["none", "acc/forget_train"] == "0.900 ± 0.141"  # mean ± sample std over the 2 seeds


def test_a_cell_with_missing_values_says_how_many_runs_it_averages():
    df = pd.DataFrame([_row("none", seed=s, **{"mia/fr": v, "acc/forget_train": 1.0}) for s, v in
                       enumerate([0.9, float("nan"), float("nan")])])
    t = summarize(df, columns=["mia/fr", "acc/forget_train"]).set_index("method")
    assert t.loc["none", "n"] == 3 and t.loc["none", "mia/fr"] == "0.900 (n=1)"
    assert t.loc["none", "acc/forget_train"] == "1.000 ± 0.000"


def test_report_on_a_missing_folder_says_so(tmp_path):
    import pytest

    from unlearn_bench.report import write_report
    with pytest.raises(SystemExit) as e:
        write_report(tmp_path / "nope")
    assert "nope is not a folder" in str(e.value) and "fix:" in str(e.value)


def test_report_md_adds_a_reference_model_table_only_when_runs_have_full_eval_metrics(tmp_path):
    from unlearn_bench.report import markdown_report
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

    from unlearn_bench.report import markdown_report
    rows = []
    for i, (m, centre) in enumerate((("retrain", 5.6), ("lra_npp", 10.5))):
        d = tmp_path / "runs" / m
        d.mkdir(parents=True)
        rng = np.random.default_rng(i)
        np.savez(d / "predictions.npz", klom_forget=rng.normal(centre, 1, 40), klom_retain=rng.normal(6, 1, 90))
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

    from unlearn_bench import figures
    from unlearn_bench.report import _klom_figure
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
