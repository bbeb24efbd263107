"""Figures say what their tables say: a Pareto point per table row with the row's n, the front only through
rows that forget, marker size and spreads shown; sweep lines with the swept values as ticks, named axes and
the chance level; legends clear of the lines."""

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from unlearn_bench.report import figures

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def drawn(monkeypatch):
    """The figures drawn, kept instead of written (the axes are what the tests read)."""
    figs = []

    def keep(fig, path, tight=True):
        fig.canvas.draw()  # lay out, so legends and axes have their final extents
        figs.append(fig)
        return Path(path)
    monkeypatch.setattr(figures, "_save", keep)
    return figs


def _run(root: Path, method: str, seed: int, setup: str, at: float, ag: float, forget: int = 3,
         **extra) -> None:
    d = root / setup / method / f"forget{forget}-seed{seed}"
    d.mkdir(parents=True)
    m = {"status": "ok", "method": method, "data": "digits", "model": "mlp", "forget": str(forget),
         "seed": seed, "setup": setup, "acc/forget_train": at, "acc/retain_train": ag,
         "acc/retain_test": ag - 0.02, "cost/unlearn_s": 0.5, "original/acc/forget_train": 0.98,
         "original/acc/retain_train": 0.99, "original/acc/retain_test": 0.97, **extra}
    (d / "metrics.json").write_text(json.dumps(m))
    cfg = {"method": {"_target_": "x"}, "forget": {"classes": [forget], "unseen": {"source": "holdout"}}}
    (d / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))


def _legend(fig) -> Counter:
    """(method, n) of every point named beside a Pareto figure."""
    out = Counter()
    for t in fig.axes[0].texts:
        m = re.match(r"^(\S+).*?\(n=(\d+)", t.get_text())
        if m:
            out[(m.group(1), int(m.group(2)))] += 1
    return out


def test_pareto_legend_n_equals_the_tables_n_for_every_point(tmp_path, drawn):
    """Two setups of one task: the table keeps their Original rows apart (n = 2 and n = 1), so must the
    figure (it once pooled them into one point, Original n = 3)."""
    runs = tmp_path / "runs"
    for setup, seeds in (("s1", (0, 1)), ("s2", (0,))):
        for s in seeds:
            _run(runs, "retrain", s, setup, 0.0, 0.99)
            _run(runs, "lra_npp", s, setup, 0.02 + 0.01 * s, 0.95)
    spec = importlib.util.spec_from_file_location("paper_analyze",
                                                  ROOT / "experiments/paper_tables/analyze.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    mod.main([str(runs), "--out", str(out)])
    table = pd.read_csv(out / "table_digits_holdout.csv")
    rows = Counter((m, int(n)) for m, n in zip(table["method"], table["n"]) if n > 0)
    assert rows[("Original", 2)] == 1 and rows[("Original", 1)] == 1
    assert len(drawn) == 1 and _legend(drawn[0]) == rows


def test_report_pareto_points_are_the_report_tables_rows(tmp_path, drawn):
    from unlearn_bench.report.markdown import markdown_report
    from unlearn_bench.report.summary import summarize
    rows = []
    for setup, seeds in (("s1", (0, 1)), ("s2", (0,))):
        for s in seeds:
            for method, at in (("retrain", 0.0), ("ssd", 0.97), ("lra_npp", 0.05)):
                rows.append({"data": "digits", "model": "mlp", "forget": "3", "seed": s, "setup": setup,
                             "status": "ok", "method": method, "acc/forget_train": at, "acc/retain_test": 0.9,
                             "original/acc/forget_train": 0.98, "original/acc/retain_test": 0.95})
    rows.append({**rows[-1], "status": "failed", "setup": "s3", "seed": 5})  # a setup only a failed run has
    df = pd.DataFrame(rows)
    markdown_report(df, tmp_path / "out")
    table = summarize(df)
    assert _legend(drawn[-1]) == Counter((m, int(n)) for m, n in zip(table["method"], table["n"]) if n > 0)


def _front(fig):
    line = next(ln for ln in fig.axes[0].lines if "Pareto front" in str(ln.get_label()))
    return list(zip(np.round(line.get_xdata(), 3), np.round(line.get_ydata(), 3)))


def test_the_front_runs_only_through_rows_that_forget(tmp_path, drawn):
    """finetune keeps the forget accuracy at the Original's (0.90, within noise over 100 examples) and the
    best retain accuracy: once it was the front; now the front is the rows that forget."""
    from unlearn_bench.report.summary import pareto_runs
    rows = []
    for s in (0, 1):
        for method, at, ag in (("retrain", 0.0, 0.93), ("lra_npp", 0.01, 0.90), ("finetune", 0.90, 0.97),
                               ("ga", 0.5, 0.95)):
            rows.append({"data": "digits", "model": "mlp", "forget": "3", "seed": s, "status": "ok",
                         "method": method, "acc/forget_train": at + 0.01 * s, "acc/retain_test": ag,
                         "cost/unlearn_s": 1.0, "examples/forget_train": 100,
                         "original/acc/forget_train": 0.91 + 0.01 * s, "original/acc/retain_test": 0.97})
    runs = pareto_runs(pd.DataFrame(rows))
    assert dict(zip(runs["_label"], runs["_forgets"])) == {
        "Original": False, "retrain": True, "lra_npp": True, "finetune": False, "ga": True}
    figures.pareto(runs, tmp_path / "p.png", label="_label", eligible="_forgets")
    assert _front(drawn[-1]) == [(0.005, 0.93), (0.505, 0.95)]  # retrain, then ga; never finetune
    names = [t.get_text() for t in drawn[-1].axes[0].texts]
    assert any(t.startswith("finetune") and "does not forget" in t for t in names)
    # the rows the table marks ≈O are those the figure leaves off the front
    from unlearn_bench.report.summary import summarize
    t = summarize(pd.DataFrame(rows), ["acc/forget_train"]).set_index("method")["acc/forget_train"]
    assert [m for m in t.index if "≈O" in t[m]] == ["finetune"]


def test_marker_area_has_its_legend_and_spreads_show_as_bars(tmp_path, drawn):
    df = pd.DataFrame([{"method": m, "acc/forget_train": f + 0.05 * s, "acc/retain_test": 0.9 - 0.03 * s,
                        "cost/unlearn_s": c}
                       for m, f, c in (("a", 0.1, 0.2), ("b", 0.3, 30.0)) for s in (0, 1)])
    figures.pareto(df, tmp_path / "p.png")
    ax = drawn[-1].axes[0]
    legends = [c for c in ax.get_children() if isinstance(c, type(ax.get_legend()))]
    titles = [lg.get_title().get_text() for lg in legends]
    assert "marker area = unlearning time" in titles
    sizes = next(lg for lg in legends if lg.get_title().get_text().startswith("marker area"))
    assert [t.get_text() for t in sizes.get_texts()] == ["0.1 s", "1 s", "10 s", "100 s"]
    bars = [c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert bars and max(c.lines[2][0].get_linewidth().max() for c in bars) >= 1.5  # drawn bold, not faint
    assert ax.get_xlabel().startswith("forget accuracy") and ax.get_ylabel().startswith("retain-class test")


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_sweep_lines_tick_the_swept_values_and_draw_chance(tmp_path, drawn):
    df = pd.DataFrame([{"cfg/method.h": h, "forget": "3", "acc/forget_train": 1.0 / h, "acc/retain_test": 0.9}
                       for h in (5, 20, 80)])
    figures.lines(df, "cfg/method.h", ["acc/forget_train", "acc/retain_test"], tmp_path / "s.png", logx=True,
                  chance=0.1)
    fig = drawn[-1]
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "20", "80"]
        assert not [t for t in ax.get_xticklabels(minor=True) if t.get_text()]
        assert ax.get_xlabel().startswith("H, units perturbed")
        assert not _overlaps(ax.get_legend().get_window_extent(), ax.get_window_extent())
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["n=1 per point", "chance, 1/10 = 0.10"]
    assert [ln.get_ydata()[0] for ln in fig.axes[0].lines if ln.get_label().startswith("chance")] == [0.1]


def test_klom_legend_sits_clear_of_the_panels(tmp_path, drawn):
    rng = np.random.default_rng(0)
    per = {m: {"forget": rng.normal(c, 1, 50), "retain": rng.normal(6, 1, 50)}
           for m, c in (("a", 5), ("b", 9))}
    figures.klom_boxes(per, 5.64, tmp_path / "k.png", "t")
    fig = drawn[-1]
    legend = fig.legends[0]
    assert "5.64" in " ".join(t.get_text() for t in legend.get_texts())
    assert not any(_overlaps(legend.get_window_extent(), ax.get_window_extent()) for ax in fig.axes)


def _make_figures(runs: Path):
    """`make figures RUNS=runs` with this interpreter, never reinstalling the environment."""
    import hashlib
    import os
    import subprocess
    import sys
    stamp = f".venv/.installed-{hashlib.md5((ROOT / 'pyproject.toml').read_bytes()).hexdigest()[:8]}"
    return subprocess.run(["make", "-s", "-o", stamp, "figures", f"RUNS={runs}", f"PY={sys.executable}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MPLBACKEND": "Agg"})


def _git_status() -> str:
    import subprocess
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def test_make_figures_fails_on_an_empty_runs_dir_and_leaves_the_tree_as_it_was(tmp_path):
    import shutil
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    before = _git_status()
    (tmp_path / "empty").mkdir()
    r = _make_figures(tmp_path / "empty")
    assert r.returncode != 0
    scripts = sorted((ROOT / "experiments").glob("*/analyze.py"))
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("skipped ")]
    assert len(lines) == len(scripts)  # one line per script, naming the runs folder it needs
    for script, line in zip(scripts, lines):
        assert f"skipped experiments/{script.parent.name}/analyze.py" in line
        assert str(tmp_path / "empty" / script.parent.name) in line
    assert "no script found runs" in r.stderr
    assert _git_status() == before


def test_make_figures_succeeds_when_one_script_rebuilt_and_writes_only_ignored_files(tmp_path):
    import shutil
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = ROOT / "experiments" / "h_sweep" / "results"
    if out.exists():
        pytest.skip(f"{out} holds earlier results; this test would replace them")
    runs = tmp_path / "runs" / "h_sweep"
    for h in (5, 20):
        d = runs / f"h{h}" / "lra_npp" / "forget3-seed0"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({
            "status": "ok", "method": "lra_npp", "data": "digits", "model": "mlp", "forget": "3", "seed": 0,
            "acc/forget_train": 1.0 / h, "acc/retain_train": 0.99, "acc/retain_test": 0.97,
            "cost/unlearn_s": 0.1}))
        cfg = OmegaConf.create({"method": {"_target_": "x", "h": h}})
        (d / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    before = _git_status()
    try:
        r = _make_figures(tmp_path / "runs")
        assert r.returncode == 0, r.stderr
        assert "rebuilt experiments/h_sweep/analyze.py: experiments/h_sweep/results/" in r.stdout
        assert "skipped experiments/n_sweep/analyze.py" in r.stdout and "1 of " in r.stdout
        assert (out / "sweep.png").is_file() and (out / "table.md").is_file()
        assert _git_status() == before
    finally:
        shutil.rmtree(out, ignore_errors=True)
