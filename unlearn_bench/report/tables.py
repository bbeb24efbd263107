"""``unlearn-bench-report RUNS_DIR``: results tables rebuilt from run directories.

Every table has an Original row (the model before unlearning, from the ``original/`` keys, or the ``none``
runs that equal it) and, when present, the Retrain oracle; every cell is mean ± std over runs (seeds x
method seeds) with n stated, the spread over an attack's draws where it has one, a mark where a row lies
within noise of Retrain and one where its forget accuracy stays at the Original's (``spread.py``). Where the
sweeps recorded their launches (``launches.py``), each row also says how many runs were expected and found
(``expected.py``). Besides ``results.md`` / ``.csv`` the command writes ``report.md`` (``markdown.py``): the
tables, paired statistics against Retrain (``stats.py``), a forget-vs-retain Pareto figure per data x model
(``figures.py``) whose points are the table's rows (``summary.table_groups`` serves both), and the missing
runs with their likely reason. It prints the table and every path it wrote.

The pieces: ``load`` (runs and their settings), ``summary`` (a table's rows), ``markdown`` (report.md),
``sweeps`` (one swept setting), ``experiment`` (the experiments' analyze.py command line)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unlearn_bench.report import spread as sp
from unlearn_bench.report.load import load
from unlearn_bench.report.markdown import EXPECTED_NOTE, markdown_report
from unlearn_bench.report.summary import summarize, varying_settings


def write_report(runs_dir, out: str | Path | None = None, figures: bool = True,
                 written: list[Path] | None = None, notes: list[str] | None = None) -> str:
    """``results.md`` / ``.csv`` (the summary table) and, beside them, ``report.md`` with figures and tests.
    ``runs_dir`` is one folder or a list (runs found in several are counted once); every path written is
    added to ``written``, a line on missing runs to ``notes``."""
    written = written if written is not None else []
    dirs = [runs_dir] if isinstance(runs_dir, (str, Path)) else list(runs_dir)
    missing = [str(d) for d in dirs if not Path(d).is_dir()]
    if missing:
        raise SystemExit(f"error: {missing[0]} is not a folder; fix: point at the runs_dir/name folder of a "
                         f"sweep, e.g. runs/default")
    df = load(dirs)
    if df.empty:
        raise SystemExit(f"error: no metrics.json under {', '.join(map(str, dirs))}; "
                         "fix: point at a folder of run directories")
    by = varying_settings(df)
    table = summarize(df, by=by)
    md = table.to_markdown(index=False)
    out = Path(out) if out else Path(dirs[0]) / "results"
    out.parent.mkdir(parents=True, exist_ok=True)
    footnotes = [sp.LEGEND] + ([EXPECTED_NOTE] if "expected" in table.columns else [])
    Path(f"{out}.md").write_text(md + "\n\n" + "\n\n".join(footnotes) + "\n")
    table.to_csv(f"{out}.csv", index=False)
    written += [Path(f"{out}.md"), Path(f"{out}.csv")]
    markdown_report(df, out.parent, title=f"Results: {', '.join(map(str, dirs))}", by=by, figures=figures,
                    written=written)
    launches = df.attrs.get("launches")
    exp, found = launches.totals() if launches is not None else (0, 0)
    if found < exp and notes is not None:
        notes.append(f"{exp - found} of {exp} expected runs left no result: listed in "
                     f"{out.parent / 'report.md'}")
    return md



def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="unlearn-bench-report",
                                 description="Summarise run directories into a results table and report.md.")
    ap.add_argument("runs_dir", nargs="+", help="one or more folders searched for run directories")
    ap.add_argument("--out", default=None,
                    help="output path without extension (default FIRST_RUNS_DIR/results)")
    ap.add_argument("--no-figures", action="store_true", help="skip the Pareto figures in report.md")
    args = ap.parse_args(argv)
    written: list[Path] = []
    notes: list[str] = []
    md = write_report(args.runs_dir, args.out, figures=not args.no_figures, written=written, notes=notes)
    wrote = "".join(f"wrote {p}\n" for p in written)
    sys.stdout.write(md + "\n\n" + wrote + "".join(f"{n}\n" for n in notes))


if __name__ == "__main__":
    main()
