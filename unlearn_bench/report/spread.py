"""What a table cell says about uncertainty: the mean over runs, its spread over runs (seeds, method seeds)
and, for a population attack computed over ``eval.mia_draws`` draws (its ``<key>_std`` beside it), the
spread over draws; plus whether a row lies within noise of the Retrain oracle, and whether it forgot at all.

A cell shows the spread of one draw (root mean square of the runs' ``_std``): how far a single draw of the
attack may land. The run's value is the mean of R draws, so its own draw noise is that / sqrt(R).

Within noise: |mean - Retrain mean| <= sqrt(s^2 + s_R^2), where a row's spread s combines its std over runs
(n >= 2) and the draw noise of its mean (one draw's std / sqrt(R), R from ``eval/mia_draws``; the std itself
when R is unknown) in quadrature. A row with neither (one run, no draws) has no measured spread and gets no
mark: one number cannot be called close or far.

Does not forget: the same test against the Original row, on the forget accuracies. An accuracy over the N
examples of the forget set is itself a mean of N draws (each example right or wrong, one draw's std
sqrt(p(1 - p))), so its draw noise sqrt(p(1 - p) / N) joins the spread as an attack's draws do; with N known
(``examples/<split>``, from the run's per_class.csv) a single run can be judged too. Without N and without
runs, only a value equal to the Original's at the table's precision is marked."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

NOISE_PREFIXES = ("acc/", "mia/")  # metrics the oracle itself measures, so its value is the target
WITHIN = "≈R"
NOT_FORGOTTEN = "≈O"
FORGET_ACCURACIES = ("acc/forget_train", "acc/forget_test")
NO_SPREAD = "n = 1: no spread"
LEGEND = ("`(draws ± x)`: std of one draw of the attack within a run (root mean square over runs); the "
          "value is the mean of R draws, so its draw noise is x / √R. "
          f"`{WITHIN}`: within noise of Retrain, |mean − Retrain mean| ≤ √(s² + s_R²), s² = a row's variance "
          "over runs + x² / R. Rows with n = 1 have no spread over runs. "
          f"`{NOT_FORGOTTEN}`: does not forget, the forget accuracy is within noise of the Original's by the "
          "same rule, with an accuracy's own noise √(p(1 − p) / N) over the N examples of the forget set as "
          "its draw noise.")


@dataclass
class Spread:
    mean: float
    runs_std: float  # NaN for one run
    draws_std: float  # one draw's; NaN when the key has no draws
    draws_sem: float  # the draw noise of a run's mean over its R draws
    n: int

    @property
    def total(self) -> float:
        """The combined spread, NaN when neither part was measured."""
        parts = [v for v in (self.runs_std, self.draws_sem) if not math.isnan(v)]
        return math.sqrt(sum(v * v for v in parts)) if parts else math.nan


def spread(vals: pd.Series, draws: pd.Series | None = None, r: pd.Series | None = None) -> Spread:
    """``vals``: one value per run; ``draws``: the runs' std over attack draws (``<key>_std``); ``r``: the
    runs' number of draws (``eval/mia_draws``)."""
    v = pd.to_numeric(vals, errors="coerce").dropna().to_numpy(float)
    d = pd.to_numeric(draws, errors="coerce") if draws is not None else pd.Series(dtype=float)
    rr = pd.to_numeric(r, errors="coerce").reindex(d.index) if r is not None else \
        pd.Series(np.nan, index=d.index)
    sem2 = (d ** 2 / rr.where(rr > 0, 1.0).fillna(1.0)).dropna()  # R unknown: one draw's std, the wider
    d = d.dropna().to_numpy(float)
    return Spread(float(v.mean()) if v.size else math.nan, float(v.std(ddof=1)) if v.size > 1 else math.nan,
                  float(np.sqrt(np.mean(d ** 2))) if d.size else math.nan,
                  float(np.sqrt(sem2.mean())) if len(sem2) else math.nan, int(v.size))


def cell(s: Spread, n: int | None = None) -> str:
    """``0.520 ± 0.030 (draws ± 0.100)``; ``(n=k)`` when only k of the row's n runs have a value, so a
    cell never claims more runs than it averages."""
    if s.n == 0:
        return "—"
    text = f"{s.mean:.3f}" if s.n == 1 else f"{s.mean:.3f} ± {s.runs_std:.3f}"
    if not math.isnan(s.draws_std):
        text += f" (draws ± {s.draws_std:.3f})"
    return text if n is None or s.n >= n else f"{text} (n={s.n})"


def within_noise(s: Spread, ref: Spread) -> bool:
    """Whether ``s`` lies within the combined spread of the oracle's row ``ref`` (module docstring)."""
    if math.isnan(s.total) or math.isnan(s.mean) or math.isnan(ref.mean):
        return False  # a row without a measured spread of its own is neither close nor far
    parts = [v for v in (s.total, ref.total) if not math.isnan(v)]
    return abs(s.mean - ref.mean) <= math.sqrt(sum(v * v for v in parts)) + 1e-12


def marks_noise(column: str) -> bool:
    return column.startswith(NOISE_PREFIXES) and not column.endswith("_std")


def mark_within_noise(rows: list[dict], spreads: list[dict], group: list[str], columns: list[str]) -> None:
    """Append ``WITHIN`` to each table cell whose row lies within noise of its task's ``retrain`` row;
    ``spreads[i][column]`` is the ``Spread`` behind ``rows[i][column]``."""
    ref = {tuple(str(r[k]) for k in group): s for r, s in zip(rows, spreads) if r["method"] == "retrain"}
    for r, s in zip(rows, spreads):
        oracle = ref.get(tuple(str(r[k]) for k in group))
        if oracle is None or r["method"] == "retrain":
            continue
        for c in columns:
            if marks_noise(c) and within_noise(s[c], oracle[c]):
                r[c] += f" {WITHIN}"


def fold_original(ok: pd.DataFrame, orig: pd.DataFrame,
                  group: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The original shown once. ``none`` returns the original model unchanged, so where a ``none`` run's
    accuracies and attacks equal its run's ``original/`` values, that run *is* the Original row (and it
    carries what only a run computes: oracle distances, ZRF); one per (task, seed), whatever its method
    seed. A ``none`` run that differs from its original stays a ``none`` row, as the control it is.
    Returns (Original rows, the other runs)."""
    if "method" not in ok.columns or ok.empty:
        return orig, ok
    none = ok[ok["method"] == "none"]
    keys = [c for c in ok.columns if c.startswith("original/") and c.removeprefix("original/") in ok.columns]
    if none.empty or not keys:
        return orig, ok
    own = none[[c.removeprefix("original/") for c in keys]]
    a = own.apply(pd.to_numeric, errors="coerce").to_numpy(float)
    b = none[keys].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    same = pd.Series(np.all(np.isclose(a, b, rtol=0, atol=1e-12, equal_nan=True), axis=1), index=none.index)
    folded = none[same]
    if folded.empty:
        return orig, ok
    ident = group + ["seed"]
    rows = folded.drop_duplicates(ident).assign(method="Original")
    taken = set(rows[ident].map(str).agg("|".join, axis=1))
    rest = orig[~orig[ident].map(str).agg("|".join, axis=1).isin(taken)] if not orig.empty else orig
    return pd.concat([rest, rows], ignore_index=True), ok.drop(index=folded.index)


def accuracy_spread(runs: pd.DataFrame, column: str) -> Spread:
    """``column`` (an accuracy) over ``runs`` with its sampling noise over the ``examples/<split>`` examples
    each run scored (module docstring); without those counts, the spread over runs alone."""
    vals = pd.to_numeric(runs[column], errors="coerce") if column in runs.columns else pd.Series(dtype=float)
    size = runs.get(f"examples/{column.removeprefix('acc/')}")
    if size is None:
        return spread(vals)
    return spread(vals, np.sqrt((vals * (1 - vals)).clip(lower=0)), pd.to_numeric(size, errors="coerce"))


def not_forgotten(s: Spread, original: Spread) -> bool:
    """Whether a row's forget accuracy ``s`` lies within noise of the Original's (``accuracy_spread``);
    without a measured spread on either side, only a value equal at the table's precision (3 decimals)."""
    if math.isnan(s.mean) or math.isnan(original.mean):
        return False
    if math.isnan(s.total) and math.isnan(original.total):
        return abs(s.mean - original.mean) < 5e-4
    parts = [v for v in (s.total, original.total) if not math.isnan(v)]
    return abs(s.mean - original.mean) <= math.sqrt(sum(v * v for v in parts)) + 1e-12


def against_original(rows: list[dict], spreads: list[dict], group: list[str], column: str) -> dict[int, str]:
    """Where each row's ``column`` lies against its task's Original row: "same" (within noise,
    ``not_forgotten``), "below" or "above" (beyond it); rows without an Original, and the Original, are left
    out. ``spreads[i][column]`` is ``accuracy_spread`` of row i."""
    ref = {tuple(str(r[k]) for k in group): s for r, s in zip(rows, spreads) if r["method"] == "Original"}
    out = {}
    for i, (r, s) in enumerate(zip(rows, spreads)):
        orig = ref.get(tuple(str(r[k]) for k in group))
        if orig is None or r["method"] == "Original" or column not in s or column not in orig:
            continue
        if math.isnan(s[column].mean) or math.isnan(orig[column].mean):
            continue
        out[i] = "same" if not_forgotten(s[column], orig[column]) else \
            "below" if s[column].mean < orig[column].mean else "above"
    return out


def mark_not_forgotten(rows: list[dict], spreads: list[dict], group: list[str]) -> None:
    """Append ``NOT_FORGOTTEN`` to each forget-accuracy cell within noise of its task's Original row."""
    for c in FORGET_ACCURACIES:
        for i, where in against_original(rows, spreads, group, c).items():
            if where == "same" and c in rows[i]:
                rows[i][c] += f" {NOT_FORGOTTEN}"
