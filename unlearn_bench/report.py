"""Results tables rebuilt from run directories: ``unlearn-bench-report RUNS_DIR``.

Every table has an Original row (the model before unlearning, from the ``original/`` keys) and, when
present, the Retrain oracle; every cell is mean ± std over seeds with n stated."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from unlearn_bench.store import load_results

DEFAULT_COLUMNS = ["acc/forget_train", "acc/retain_train", "acc/forget_test", "acc/retain_test", "acc/test",
                   "mia/svc_confidence", "mia/fr", "gap/avg_to_retrain", "cost/unlearn_s"]
GROUP = ["data", "model", "forget"]


def _original_rows(ok: pd.DataFrame) -> pd.DataFrame:
    """One Original row per (data, model, forget, seed), from the ``original/`` keys of any run."""
    cols = [c for c in ok.columns if c.startswith("original/")]
    if not cols:
        return ok.iloc[0:0]
    orig = ok.drop_duplicates(GROUP + ["seed"])[GROUP + ["seed"] + cols].copy()
    orig.columns = [c.removeprefix("original/") for c in orig.columns]
    orig["method"] = "Original"
    orig["cost/unlearn_s"] = 0.0
    return orig


def _order(method: str) -> tuple:
    return (0 if method == "Original" else 1 if method == "retrain" else 3 if method == "none" else 2, method)


def summarize(df: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """Mean ± std (n) per (data, model, forget, method); failed runs are counted, never averaged."""
    if df.empty:
        return df
    ok = df[df["status"] == "ok"]
    both = pd.concat([_original_rows(ok), ok], ignore_index=True)
    columns = [c for c in (columns or DEFAULT_COLUMNS) if c in both.columns]
    rows = []
    for key, g in both.groupby(GROUP + ["method"], sort=False):
        row = dict(zip(GROUP + ["method"], key))
        row["n"] = int(g["seed"].nunique())
        failed = df[(df["method"] == row["method"]) & (df["status"] != "ok")]
        for k, v in zip(GROUP, key[:3]):
            failed = failed[failed[k] == v]
        row["failed"] = len(failed)
        for c in columns:
            vals = pd.to_numeric(g[c], errors="coerce").dropna()
            row[c] = "—" if vals.empty else (f"{vals.mean():.3f}" if len(vals) == 1
                                             else f"{vals.mean():.3f} ± {vals.std(ddof=1):.3f}")
        rows.append(row)
    out = pd.DataFrame(rows)
    out["_o"] = out["method"].map(_order)
    return out.sort_values(GROUP + ["_o"]).drop(columns="_o").reset_index(drop=True)


def write_report(runs_dir: str | Path, out: str | Path | None = None) -> str:
    df = load_results(runs_dir)
    if df.empty:
        raise SystemExit(f"error: no metrics.json under {runs_dir}; fix: point at a folder of run directories")
    table = summarize(df)
    md = table.to_markdown(index=False)
    out = Path(out) if out else Path(runs_dir) / "results"
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.md").write_text(md + "\n")
    table.to_csv(f"{out}.csv", index=False)
    return md


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Summarise run directories into a results table.")
    ap.add_argument("runs_dir")
    ap.add_argument("--out", default=None, help="output path without extension (default RUNS_DIR/results)")
    args = ap.parse_args(argv)
    md = write_report(args.runs_dir, args.out)
    sys.stdout.write(md + "\n")


if __name__ == "__main__":
    main()
