"""Paired comparisons of a method against a reference (by default the Retrain oracle), as the LRA-NPP paper
reports them (Chang et al. 2024, arXiv 2410.23693: paired t-test, Wilcoxon signed-rank, bootstrap 95% CI).

Runs are paired by (data, model, forget set, seed): the same split and original model on both sides, so the
differences remove the between-seed variation that unpaired tests would count as noise. Runs that differ
only in ``method_seed`` share their seed's original: they are averaged into one pair, so n counts training
seeds, not method seeds. One pair has no spread: no CI and no test is printed for it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

PAIR_KEYS = ["data", "model", "forget", "seed"]


def bootstrap_ci(diffs, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``diffs`` (seeded, so reports are reproducible)."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return (math.nan, math.nan)
    if d.size == 1:  # one difference has no spread: a CI would claim a certainty it does not have
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))


def paired_test(a, b, level: float = 0.95, seed: int = 0) -> dict:
    """Compare paired samples ``a`` (method) and ``b`` (reference): mean of a - b, paired t-test p,
    Wilcoxon signed-rank p and a bootstrap CI of the mean difference. p is NaN when undefined (n < 2, or
    every difference identical for the t-test); Wilcoxon gives p = 1 when every difference is zero."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    d = a - b
    n = int(d.size)
    out = {"n": n, "mean_a": float(a.mean()) if n else math.nan, "mean_b": float(b.mean()) if n else math.nan,
           "mean_diff": float(d.mean()) if n else math.nan, "t_p": math.nan, "wilcoxon_p": math.nan}
    if n >= 2 and np.ptp(d) > 0:
        out["t_p"] = float(sps.ttest_rel(a, b).pvalue)
    if n >= 2:
        # zero differences carry no sign: all-zero means "no evidence of a difference", not an error
        out["wilcoxon_p"] = 1.0 if not np.any(d) else float(sps.wilcoxon(a, b, zero_method="wilcox").pvalue)
    out["ci_low"], out["ci_high"] = bootstrap_ci(d, level=level, seed=seed)
    return out


def compare_to_reference(df: pd.DataFrame, metrics: list[str], reference: str = "retrain",
                         by: list[str] | None = None, level: float = 0.95) -> pd.DataFrame:
    """One row per (data, model, method[, by...], metric): paired statistics of every method against
    ``reference`` over the runs they share (matched on data, model, forget set and seed). ``by`` names
    extra columns that tell variants of one method apart (e.g. ``cfg/method.h``). Forget sets are pooled,
    so a 5-seed x 10-class sweep gives n = 50 pairs per method."""
    by = [c for c in (by or []) if c in df.columns]
    ok = df[df["status"] == "ok"] if "status" in df.columns else df
    ref = ok[ok["method"] == reference]
    rows = []
    if ref.empty:
        return pd.DataFrame(rows)
    others = ok[ok["method"] != reference]
    for key, g in others.groupby(["data", "model", "method", *by], sort=True, dropna=False):
        for m in metrics:
            if m not in g.columns or m not in ref.columns:
                continue
            on = PAIR_KEYS + (["setup"] if "setup" in ok.columns else [])  # never pair across setups
            pairs = _per_seed(g, on + sorted(c for c in g.columns if c.startswith("cfg/method.")), m).merge(
                _per_seed(ref, on, m), on=on, suffixes=("", "_ref"))
            pairs = pairs.dropna(subset=[m, f"{m}_ref"])
            if pairs.empty:
                continue
            res = paired_test(pd.to_numeric(pairs[m]), pd.to_numeric(pairs[f"{m}_ref"]), level=level)
            rows.append({**dict(zip(["data", "model", "method", *by], key)), "metric": m, **res})
    return pd.DataFrame(rows)


def _per_seed(runs: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """``metric`` averaged over the runs that share ``keys``: those that differ only in their method seed.
    Keys compare as text, so a blank (NaN) setting groups with itself."""
    k = runs[keys].map(str).agg("|".join, axis=1)
    means = pd.to_numeric(runs[metric], errors="coerce").groupby(k, sort=False).mean()
    first = ~k.duplicated()
    return runs.loc[first, keys].assign(**{metric: means.loc[k[first]].to_numpy()})


def format_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Readable cells: difference with its CI, p-values to 3 digits."""
    if table.empty:
        return table
    out = table[[c for c in table.columns if c not in ("mean_a", "mean_b", "mean_diff", "ci_low", "ci_high",
                                                         "t_p", "wilcoxon_p")]].copy()
    one = table["n"] < 2
    out["diff (95% CI)"] = [f"{d:+.3f} (n = 1: no spread)" if single else f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
                            for d, lo, hi, single in zip(table["mean_diff"], table["ci_low"],
                                                         table["ci_high"], one)]
    out["t-test p"] = ["—" if single else _p(p) for p, single in zip(table["t_p"], one)]
    out["Wilcoxon p"] = ["—" if single else _p(p) for p, single in zip(table["wilcoxon_p"], one)]
    return out


def _p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    return "<0.001" if p < 1e-3 else f"{p:.3f}"
