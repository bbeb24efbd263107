"""KLOM, the KL divergence of margins (Georgiev et al. 2024, "Attribute-to-Delete: Machine Unlearning via
Datamodel Matching", appendix E.1; the metric of the Easy Data-Unlearning Bench).

N originals (trained with different seeds) are each unlearned, and N oracles are retrained without the
forget set; every example then has two samples of its margin z_y - logsumexp_{c != y} z_c (LiRA's phi,
computed from logits). KLOM of the example is KL(unlearned || oracle) between the two samples' histograms:
20 equal-width bins over the range both samples span after clipping to [-100, 100]; an oracle bin left
empty where the unlearned sample has mass gets 1e-5 before the oracle histogram is renormalised. 0 when
the samples fall in the same bins in the same proportions, about ln(1 / 1e-5) = 11.5 when they share
none. The estimator is noisy at small N: two samples of one distribution score well above 0
(``klom_null``), so compare with the retrain reference at the same N. An example with a non-finite margin
scores NaN.

The authors' binning excludes a value lying exactly on the upper edge (``np.digitize``), which drops the
largest margin of every example; here the last bin is closed, as in ``np.histogram``.
"""
from __future__ import annotations

import numpy as np

from .accuracy import as_numpy

BINS = 20
EPS = 1e-5
CLIP = 100.0


def klom_per_example(unlearned_margins, oracle_margins, bins: int = BINS, eps: float = EPS,
                     clip: float = CLIP) -> np.ndarray:
    """KL(unlearned || oracle) of each column's binned margins: (N_u, n) and (N_r, n) arrays -> (n,)."""
    u = np.clip(as_numpy(unlearned_margins, np.float64), -clip, clip)
    r = np.clip(as_numpy(oracle_margins, np.float64), -clip, clip)
    if u.ndim != 2 or r.ndim != 2 or u.shape[1] != r.shape[1]:
        raise ValueError(f"margins must be (models, examples) with the same examples: {u.shape} vs {r.shape}")
    if min(len(u), len(r)) == 0:
        raise ValueError("KLOM needs at least one unlearned and one retrained model")
    bad = ~np.isfinite(np.concatenate([u, r])).all(axis=0)  # NaN margins (clip already bounded +-inf)
    u, r = np.where(bad, 0.0, u), np.where(bad, 0.0, r)
    both = np.concatenate([u, r])
    lo, hi = both.min(axis=0), both.max(axis=0)
    width = np.where(hi > lo, hi - lo, 1.0)

    def hist(s: np.ndarray) -> np.ndarray:
        idx = np.minimum(((s - lo) / width * bins).astype(np.int64), bins - 1)  # last bin closed
        counts = np.zeros((s.shape[1], bins))
        np.add.at(counts, (np.broadcast_to(np.arange(s.shape[1]), s.shape), idx), 1.0)
        return counts / len(s)

    p, q = hist(u), hist(r)
    q = np.where(p > 0, np.maximum(q, eps), q)
    q = q / q.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q), 0.0)
    return np.where(bad, np.nan, terms.sum(axis=1))


def klom_stats(per_example: np.ndarray) -> dict[str, float]:
    """Mean and 95th percentile of per-example KLOM values, NaN examples left out (NaN when none is left)."""
    k = np.asarray(per_example, np.float64)
    k = k[~np.isnan(k)]
    if k.size == 0:
        return {"mean": float("nan"), "p95": float("nan")}
    return {"mean": float(k.mean()), "p95": float(np.percentile(k, 95))}


def klom_summary(unlearned_margins, oracle_margins, **kw) -> dict[str, float]:
    """Mean and 95th percentile of the per-example KLOM (the authors plot percentiles over a split)."""
    return klom_stats(klom_per_example(unlearned_margins, oracle_margins, **kw))


def klom_null(n_models: int, examples: int = 2000, seed: int = 0) -> dict[str, float]:
    """KLOM of two independent samples of one distribution (standard normal margins), N models each: the
    value a perfect unlearning method reaches at this N, on average."""
    rng = np.random.default_rng(seed)
    return klom_summary(rng.normal(size=(n_models, examples)), rng.normal(size=(n_models, examples)))
