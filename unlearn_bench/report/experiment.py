"""The shared command line of ``experiments/<name>/analyze.py``: where an experiment's runs are read from and
its figures and tables written to."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from unlearn_bench.report.load import load


def load_or_exit(runs_dir, command: str = "", config_nodes: tuple[str, ...] = ("method",)) -> pd.DataFrame:
    """For experiments' analyze.py: the runs of one folder or a list of them, or a clear message and exit
    status 1 when there are none."""
    dirs = [runs_dir] if isinstance(runs_dir, (str, Path)) else list(runs_dir)
    there = [d for d in dirs if Path(d).exists()]
    df = load(there, config_nodes) if there else pd.DataFrame()
    if df.empty:
        how = f"; fix: run `{command}` first" if command else "; fix: run the experiment first"
        raise SystemExit(f"error: no runs (metrics.json) under {', '.join(map(str, dirs))}{how}")
    return df


RUNS_ENV = "UNLEARN_BENCH_RUNS"  # the runs_dir analyze.py scripts read by default (``make figures RUNS=...``)


def default_runs(name: str) -> str:
    """Where experiment ``name`` writes its runs unless told otherwise: ``$UNLEARN_BENCH_RUNS/name``, else
    ``runs/name`` (the default ``runs_dir``)."""
    return str(Path(os.environ.get(RUNS_ENV) or "runs") / name)


def default_out(name: str) -> Path:
    """Where ``experiments/<name>/analyze.py`` writes by default: ``experiments/<name>/results/``, which git
    ignores, so rebuilding figures never changes the source tree."""
    return Path(__file__).resolve().parents[2] / "experiments" / name / "results"


def experiment_cli(name: str, description: str, argv: list[str] | None = None,
                   config_nodes: tuple[str, ...] = ("method",)) -> tuple[pd.DataFrame, Path]:
    """The shared command line of ``experiments/<name>/analyze.py``: ``[RUNS_DIR] [--out DIR]``; returns
    the runs (with ``cfg/`` columns) and the output folder (default ``default_out(name)``)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("runs_dir", nargs="?", default=default_runs(name),
                    help=f"default $UNLEARN_BENCH_RUNS/{name}, else runs/{name}")
    ap.add_argument("--out", default=None,
                    help=f"where figures and tables go (default experiments/{name}/results/)")
    args = ap.parse_args(argv)
    df = load_or_exit(args.runs_dir, f"unlearn-bench -m experiment={name}", config_nodes)
    out = Path(args.out) if args.out else default_out(name)
    out.mkdir(parents=True, exist_ok=True)
    return df, out
