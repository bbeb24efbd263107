"""Distribution-level forgetting quality of the NeurIPS'23 Machine Unlearning Challenge (DeepMind).

Triantafillou et al. 2024, "Are we making progress in unlearning? Findings from the first NeurIPS unlearning
competition". From one original model, the unlearning algorithm is run N times and N models are retrained
without D_f; per forget example the logit-scaled confidences of the 2N models form two samples. An
(eps, delta) privacy-style distinguishability eps_i is estimated from the FPR/FNR of simple decision
rules, turned into points, and averaged into F in [0, 1] (higher = closer to retraining). Retrain vs
Retrain is the reference, and it is well below 1: with few runs per side the epsilon estimate is noisy, and
two samples of one distribution score about 0.2-0.4 at N = 3-512.
"""
from __future__ import annotations

import math

import numpy as np

from .accuracy import as_numpy

EPS_MAX = 50.0
FPR_GRID = np.linspace(0.0, 1.0, 101)  # 0.01 grid


def _rates(sorted_s: np.ndarray, lo: np.ndarray, hi: np.ndarray, kind: str) -> np.ndarray:
    """Share of ``sorted_s`` a rule flags positive, for each threshold pair (vectorised over the grid)."""
    n = len(sorted_s)
    below_lo = np.searchsorted(sorted_s, lo, side="left")  # count s < lo
    upto_hi = np.searchsorted(sorted_s, hi, side="right")  # count s <= hi
    if kind == "above":  # positive iff s > hi
        return (n - upto_hi) / n
    if kind == "below":  # positive iff s < lo
        return below_lo / n
    if kind == "outside":  # positive iff s < lo or s > hi
        return (below_lo + n - upto_hi) / n
    return (upto_hi - below_lo) / n  # "inside": positive iff lo <= s <= hi


def _rule_errors(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR, FNR of single- and double-threshold rules whose thresholds are quantiles of ``neg``.

    The thresholds put the rule's FPR on the 0.01 grid a: one-sided rules cut at q(1 - a) / q(a); the
    two-sided rules flag outside [q(a/2), q(1 - a/2)] or inside [q(1/2 - a/2), q(1/2 + a/2)].
    """
    a, q = FPR_GRID, np.quantile
    rules = {
        "above": (q(neg, 1 - a), q(neg, 1 - a)),
        "below": (q(neg, a), q(neg, a)),
        "outside": (q(neg, a / 2), q(neg, 1 - a / 2)),
        "inside": (q(neg, 0.5 - a / 2), q(neg, 0.5 + a / 2)),
    }
    sp, sn = np.sort(pos), np.sort(neg)
    fpr = np.concatenate([_rates(sn, lo, hi, k) for k, (lo, hi) in rules.items()])
    fnr = np.concatenate([1.0 - _rates(sp, lo, hi, k) for k, (lo, hi) in rules.items()])
    return fpr, fnr


def epsilon_from_rates(fpr, fnr, delta: float = 1e-5) -> float:
    """max over rules of max(0, ln(1-delta-FPR) - ln FNR, ln(1-delta-FNR) - ln FPR).

    Rules with FPR * FNR = 0 are skipped unless both are 0 (a perfect rule: eps = inf).
    """
    fpr, fnr = np.asarray(fpr, np.float64), np.asarray(fnr, np.float64)
    if np.any((fpr == 0) & (fnr == 0)):
        return math.inf
    ok = (fpr > 0) & (fnr > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.log(1 - delta - fpr[ok]) - np.log(fnr[ok])
        e2 = np.log(1 - delta - fnr[ok]) - np.log(fpr[ok])
    e = np.fmax(e1, e2)  # nan (log of a negative) only where the rule is useless
    e = e[~np.isnan(e)]
    return float(max(0.0, e.max())) if e.size else 0.0


def example_epsilon(unlearned_scores, retrain_scores, delta: float = 1e-5) -> float:
    """eps_i for one forget example from its N unlearned and N retrained scores, clipped to [0, 50].

    Each distribution plays the "positive" side in turn; eps = 50 when one sample's spread (std) is below
    1% of the other's (the rules cannot resolve such a degenerate pair).
    """
    u = as_numpy(unlearned_scores, np.float64).ravel()
    r = as_numpy(retrain_scores, np.float64).ravel()
    su, sr = u.std(), r.std()
    if su < 0.01 * sr or sr < 0.01 * su:
        return EPS_MAX
    f1, n1 = _rule_errors(u, r)
    f2, n2 = _rule_errors(r, u)
    eps = epsilon_from_rates(np.r_[f1, f2], np.r_[n1, n2], delta)
    return float(min(max(eps, 0.0), EPS_MAX))


def epsilon_points(eps, n_runs: int) -> np.ndarray:
    """Points per example: bins of width 0.5 over [0, ceil(ln(N-1))]; bin k earns 2^-k, beyond earns 0."""
    if n_runs < 3:
        raise ValueError("forgetting quality needs at least 3 runs per side")
    upper = math.ceil(math.log(n_runs - 1))
    n_bins = 2 * upper
    e = np.asarray(eps, np.float64)
    k = np.minimum(np.floor(e / 0.5), n_bins - 1)  # the last bin is closed at the upper edge
    return np.where(e <= upper, 2.0 ** -k, 0.0)


def example_epsilons(unlearned_scores, retrain_scores, delta: float = 1e-5) -> np.ndarray:
    """eps_i for every column of (N_runs, n_examples) score matrices."""
    u = np.atleast_2d(as_numpy(unlearned_scores, np.float64))
    r = np.atleast_2d(as_numpy(retrain_scores, np.float64))
    if u.shape[1] != r.shape[1]:
        raise ValueError(f"example counts differ: {u.shape} vs {r.shape}")
    return np.array([example_epsilon(u[:, i], r[:, i], delta) for i in range(u.shape[1])])


def forgetting_quality(unlearned_scores, retrain_scores, delta: float = 1e-5) -> float:
    """F = mean points over forget examples (Triantafillou et al. 2024). Higher = more like retraining.

    ``unlearned_scores``, ``retrain_scores``: (N_runs, n_examples) logit-scaled confidences (phi, see
    mia.logit_scaled_confidence). If the run counts differ, the smaller one sets the bin range.
    Finite-N noise: two independent samples of one distribution give eps ~ 1 at small N, so F of
    Retrain vs Retrain sits below 1; report it as the reference row.
    """
    u, r = as_numpy(unlearned_scores), as_numpy(retrain_scores)
    n_runs = min(np.atleast_2d(u).shape[0], np.atleast_2d(r).shape[0])
    return float(np.mean(epsilon_points(example_epsilons(u, r, delta), n_runs)))


def final_score(F: float, ra_u: float, ra_r: float, ta_u: float, ta_r: float) -> float:
    """Challenge final score: F * (RA_u / RA_r) * (TA_u / TA_r). Higher = better; Retrain scores its own F
    (well below 1 for few runs, see ``forgetting_quality``). NaN when the oracle's accuracy is 0."""
    if float(ra_r) == 0.0 or float(ta_r) == 0.0:
        return float("nan")
    return float(F) * (float(ra_u) / float(ra_r)) * (float(ta_u) / float(ta_r))
