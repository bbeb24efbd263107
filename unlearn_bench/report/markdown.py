"""``report.md``: per data x model the results table, the reference-model table and per-example KLOM
(eval=full), the Pareto figure whose points are the table's rows, paired tests against Retrain
(``stats.py``), the failed runs with their reasons and the missing runs (``expected.py``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from unlearn_bench.report import spread as sp
from unlearn_bench.report.summary import FULL_COLUMNS, STATS_METRICS, pareto_runs, row_order, summarize


def write_table(table: pd.DataFrame, path: str | Path, heading: str = "") -> str:
    """``path``.md (markdown, with an optional heading line) and ``path``.csv."""
    md = (f"{heading}\n\n" if heading else "") + table.to_markdown(index=False) + "\n"
    Path(f"{path}.md").write_text(md)
    table.to_csv(f"{path}.csv", index=False)
    return md


def _commits(df: pd.DataFrame) -> str:
    """Git commits (and dirty flags) the runs were made from, from each run's env.json."""
    seen = set()
    for d in df.get("run_dir", []):
        p = Path(d) / "env.json"
        if p.exists():
            env = json.loads(p.read_text())
            dirty = " (dirty)" if env.get("git_dirty") else ""
            seen.add(f"{(env.get('git_commit') or 'unknown')[:10]}{dirty}")
    return ", ".join(sorted(seen)) or "unknown"


EXPECTED_NOTE = ("`expected` / `found`: runs the launch records list for the row (`.launches/` in each "
                 "sweep folder, written when `unlearn-bench -m` starts) and how many of them left a result "
                 "(finished or failed); — where no record lists the row. The Original row counts the `none` "
                 "jobs, whose runs are the original model. Missing runs, if any, are listed at the end.")
PARETO_NOTE = ("Points are the table's rows (n as in the table), mean ± std over runs; marker area = "
               "unlearning time (legend); dashed: the Pareto front, the rows no other row beats on both axes "
               "among those that forget, whose forget accuracy lies below the Original's beyond noise (rows "
               "marked ≈O, and rows above the Original, do not forget: their labels say so).")


def markdown_report(df: pd.DataFrame, out_dir: str | Path, title: str = "Results",
                    columns: list[str] | None = None, by: list[str] | None = None,
                    reference: str = "retrain", figures: bool = True,
                    rename: dict[str, str] | None = None, written: list[Path] | None = None) -> str:
    """A self-contained markdown report in ``out_dir/report.md``: per data x model a table (mean ± std, n,
    failed; expected and found where launches were recorded), its Pareto figure, paired tests against
    ``reference``, the reasons of failed runs and the missing runs. Paths written are added to ``written``."""
    from unlearn_bench.report import stats
    written = written if written is not None else []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = df[df["status"] != "ok"]
    repeats = df.attrs.get("repeats", 0)
    launches = df.attrs.get("launches")
    counted = ""
    if launches is not None:
        exp, found = launches.totals()
        counted = f"{found} of {exp} expected runs found. {EXPECTED_NOTE} "
    lines = [f"# {title}", "",
             (f"{len(df)} runs ({len(failed)} failed); cells are mean ± std over runs, n = runs per row "
              "(seeds x method seeds). " + counted + sp.LEGEND + " "
              + (f"{repeats} repeated run(s) of an experiment already counted were left out (the newest "
                 "is kept). " if repeats else "")
              + f"Commits: {_commits(df)}."), ""]
    for (data, model), g in df.groupby(["data", "model"], sort=True):
        lines += [f"## {data} / {model}", "", summarize(g, columns, by, rename).to_markdown(index=False), ""]
        ok = g[g["status"] == "ok"]
        full = [c for c in FULL_COLUMNS if c in ok.columns and ok[c].notna().any()]
        if full:
            lines += _reference_model_table(g, ok, full, by)
            if figures:
                lines += _klom_figure(g, out_dir / f"klom-{data}-{model}.png", f"{data} / {model}", by,
                                      written)
        if figures and not ok.empty:
            from unlearn_bench.report import figures as figs
            name = f"pareto-{data}-{model}.png"
            written.append(figs.pareto(pareto_runs(g, by), out_dir / name, label="_label",
                                       eligible="_forgets", title=f"{data} / {model}"))
            lines += [f"![forget vs retain, {data} / {model}]({name})", "", PARETO_NOTE, ""]
    comp = stats.compare_to_reference(df, STATS_METRICS, reference=reference, by=by)
    if not comp.empty:
        lines += [f"## Paired comparison with {reference}", "",
                  ("Difference method − reference over runs matched on data, model, forget set and seed "
                   "(runs of one seed's method seeds averaged first, so n counts seeds); bootstrap 95% CI of "
                   "the mean difference; paired t-test and Wilcoxon signed-rank p. With n = 1 there is no "
                   "spread, so neither CI nor test."), "",
                  stats.format_comparison(comp).to_markdown(index=False), ""]
    if not failed.empty:
        lines += ["## Failed runs", ""] + [f"- `{r.get('run_dir', '')}`: {r.get('reason', '')}"
                                            for _, r in failed.iterrows()] + [""]
    if launches is not None:
        lines += launches.missing_lines()
    md = "\n".join(lines)
    (out_dir / "report.md").write_text(md)
    written.append(out_dir / "report.md")
    return md


def _reference_model_table(g: pd.DataFrame, ok: pd.DataFrame, columns: list[str], by) -> list[str]:
    """eval=full's metrics for one data x model: U-LiRA, forgetting quality, KLOM (with its null at the
    runs' N)."""
    note = ("Reference-model metrics (eval=full; docs/metrics.md). Retrain's row is the target: forgetting "
            "quality and KLOM of a perfect method are not 1 and 0 at small N")
    if "eval/klom_null_mean" in ok.columns and ok["eval/klom_null_mean"].notna().any():
        pairs = ok[["eval/fq_runs", "eval/klom_null_mean"]].dropna().values
        nulls = sorted({(int(n), float(v)) for n, v in pairs})
        note += "; KLOM of one distribution against itself: " + ", ".join(f"{v:.2f} at N = {n}"
                                                                          for n, v in nulls)
    table = summarize(g, columns, by)
    table = table[table["method"] != "Original"]  # these metrics exist for unlearned models only
    return [note + ".", "", table.to_markdown(index=False), ""]


def _klom_figure(g: pd.DataFrame, path: Path, title: str, by: list[str] | None = None,
                 written: list[Path] | None = None) -> list[str]:
    """Per-example KLOM of every run (predictions.npz), one box per row of the table beside it (the rows of
    ``table_groups``, labelled as in the Pareto figure; the Original has no row there)."""
    from unlearn_bench.report import figures as figs
    per: dict[tuple, dict[str, list]] = {}
    for _, r in pareto_runs(g, by).iterrows():
        f = Path(str(r.get("run_dir", ""))) / "predictions.npz"
        if r["method"] == "Original" or not f.is_file():
            continue
        try:
            with np.load(f, allow_pickle=False) as z:
                arrays = {p: z[f"klom_{p}"] for p in ("forget", "retain", "test") if f"klom_{p}" in z.files}
        except (OSError, ValueError) as e:  # a damaged file leaves its run out of the figure, not the report
            logging.getLogger("unlearn_bench").warning("%s is unreadable (%s); left out of the KLOM figure",
                                                       f, e)
            continue
        for part, a in arrays.items():
            per.setdefault((row_order(str(r["method"])), r["_label"]), {}).setdefault(part, []).append(a)
    if not per:
        return []
    per = {k[1]: {p: np.concatenate(v) for p, v in d.items()} for k, d in sorted(per.items())}
    ok = g[g["status"] == "ok"]
    nulls = pd.to_numeric(ok.get("eval/klom_null_mean", pd.Series(dtype=float)), errors="coerce").dropna()
    null = float(nulls.iloc[0]) if len(nulls) and nulls.nunique() == 1 else None  # one N, one line
    out = figs.klom_boxes(per, null, path, f"per-example KLOM, {title}")
    if written is not None:
        written.append(out)
    return [f"![per-example KLOM, {title}]({path.name})", ""]
