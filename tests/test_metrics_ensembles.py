"""Metrics over ensembles of models (forgetting quality, KLOM) against hand-worked cases and independent
computations (numpy histograms, scipy) on small seeded inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import entropy as sp_entropy

from unlearn_bench import metrics as M
from unlearn_bench.metrics.info import METRIC_INFO


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------- forgetting_quality.py
def test_epsilon_hand_worked():
    r = np.arange(100.0)
    assert M.example_epsilon(r, r) == 0.0  # identical samples: every rule has FPR + FNR = 1
    assert M.example_epsilon(r + 1000, r) == 50.0  # separable: a perfect rule, inf clipped to 50
    assert M.example_epsilon(np.full(100, 3.0) + 1e-4 * r, r) == 50.0  # spread < 1% of the other
    # u = r + 50 overlaps half: best rule flags the top 1% of r (FPR .01) and misses 49 of u (FNR .49)
    assert M.example_epsilon(r + 50, r) == pytest.approx(math.log(0.51 - 1e-5) - math.log(0.01))
    # u = 45.0, 45.1, ..., 54.9 sits inside r: with r as the positive side, "score < q_u(0.01) = 45.099"
    # flags 1 of u (FPR .01) and 46 of r (0..45, FNR .54); needs the roles swapped to be found
    u = 45 + 0.1 * r
    assert M.example_epsilon(u, r) == pytest.approx(math.log(0.46 - 1e-5) - math.log(0.01))
    # r in two clusters [0, 10) and [90, 100) (step .2); u: 80 points in [45, 55) + 10 in each r cluster.
    # Only the two-sided "inside" rule finds it: [q_r(.49), q_r(.51)] = [9.702, 90.098] holds 2 of r
    # (FPR .02) and 81 of u (FNR .19)
    r2 = np.r_[np.arange(0, 10, 0.2), np.arange(90, 100, 0.2)]
    u2 = np.r_[45 + 0.125 * np.arange(80), np.arange(0, 10, 1.0), np.arange(90, 100, 1.0)]
    assert M.example_epsilon(u2, r2) == pytest.approx(math.log(0.81 - 1e-5) - math.log(0.02))
    assert M.epsilon_from_rates([0.2, 0.0], [0.3, 0.5]) == pytest.approx(math.log(0.7 - 1e-5) - math.log(0.2))


def test_forgetting_quality_bins_and_extremes(rng):
    r = np.arange(100.0)
    ident = np.tile(r[:, None], (1, 3))
    assert M.forgetting_quality(ident, ident) == 1.0
    assert M.forgetting_quality(ident + 1000, ident) == 0.0
    u = np.stack([r, r + 50, r + 1000], axis=1)
    # N=100: bins of 0.5 up to ceil(ln 99) = 5; eps 0 -> 1, eps 3.93 -> bin 7 -> 2^-7, eps 50 -> 0
    assert M.forgetting_quality(u, ident) == pytest.approx((1 + 2 ** -7 + 0) / 3)
    assert M.epsilon_points([5.0, 5.01], 100).tolist() == [2.0 ** -9, 0.0]
    # N=8: ceil(ln 7) = 2, so 4 bins; the last is closed at 2.0
    assert M.epsilon_points([0.49, 1.9, 2.0, 2.2], 8).tolist() == [1.0, 2.0 ** -3, 2.0 ** -3, 0.0]
    a, b = rng.normal(0, 1, (64, 20)), rng.normal(0, 1, (64, 20))
    assert M.forgetting_quality(a, b) > M.forgetting_quality(a + 1.5, b)
    assert M.final_score(0.5, 0.9, 1.0, 0.8, 1.0) == pytest.approx(0.36)
    assert math.isnan(M.final_score(0.5, 0.9, 0.0, 0.8, 1.0))  # an oracle at accuracy 0: undefined


# ---------------------------------------------------------------- klom.py
def _klom_reference(u, r, bins=20, eps=1e-5, clip=100.0):
    """One example at a time with np.histogram and scipy's entropy (which normalises q)."""
    out = []
    for a, b in zip(np.clip(u, -clip, clip).T, np.clip(r, -clip, clip).T, strict=True):
        lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
        p = np.histogram(a, edges)[0] / len(a)
        q = np.histogram(b, edges)[0] / len(b)
        out.append(sp_entropy(p, np.where(p > 0, np.maximum(q, eps), q)))
    return np.array(out)


def test_klom_matches_histogram_and_scipy_entropy(rng):
    u = rng.normal(0.5, 1.0, (7, 60))
    r = rng.normal(0.0, 1.5, (9, 60))  # the two sides need not have the same N
    u[:, 0] = 3.0  # one column constant on both sides: one bin, KL 0
    r[:, 0] = 3.0
    u[:, 1] = 500.0  # beyond the clip: every value lands in the top bin
    np.testing.assert_allclose(M.klom_per_example(u, r), _klom_reference(u, r), rtol=1e-12, atol=1e-12)
    assert M.klom_per_example(u, r)[0] == 0.0
    np.testing.assert_allclose(M.klom_per_example(r, r), 0.0, atol=1e-12)
    u[2, 3] = np.nan  # a non-finite margin: that example is NaN, the others unchanged, the summary skips it
    k = M.klom_per_example(u, r)
    assert np.isnan(k[3]) and np.isfinite(np.delete(k, 3)).all()
    assert M.klom_summary(u, r)["mean"] == pytest.approx(np.delete(k, 3).mean())


def test_klom_disjoint_samples_reach_the_smoothing_bound():
    u, r = np.zeros((4, 3)), np.ones((4, 3))  # all unlearned mass in bin 0, all oracle mass in the top bin
    bound = math.log(1.0 / (1e-5 / (1 + 1e-5)))
    np.testing.assert_allclose(M.klom_per_example(u, r), bound)
    with pytest.raises(ValueError, match="same examples"):
        M.klom_per_example(np.zeros((3, 4)), np.zeros((3, 5)))


def test_klom_summary_and_null_shrink_with_n(rng):
    s = M.klom_summary(rng.normal(size=(10, 200)), rng.normal(3.0, 1.0, (10, 200)))
    k = M.klom_per_example(rng.normal(size=(10, 200)), rng.normal(3.0, 1.0, (10, 200)))
    assert s["p95"] >= s["mean"] > 0 and k.mean() > M.klom_null(10)["mean"]
    nulls = [M.klom_null(n)["mean"] for n in (3, 10, 100)]
    assert nulls[0] > nulls[1] > nulls[2] > 0
    # the figures the metric table quotes as the retrain reference
    assert [round(v, 2) for v in nulls] == pytest.approx([9.2, 5.6, 0.35], abs=0.051)
    assert "9.2 at N = 3, 5.6 at 10, 0.35 at 100" in METRIC_INFO["klom/forget_mean"].retrain_reference
