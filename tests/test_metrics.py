"""Metrics against independent computations (sklearn / scipy / hand-worked) on small seeded inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import softmax as sp_softmax
from scipy.stats import entropy as sp_entropy
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from unlearn_bench import metrics as M

C = 5


def _logits(rng, n, boost, spread=1.0, labels=None):
    """Random logits whose true-class logit is raised by N(boost, spread): boost sets memorisation."""
    y = rng.integers(0, C, n) if labels is None else labels
    z = rng.normal(size=(n, C))
    z[np.arange(n), y] += rng.normal(boost, spread, n)
    return z, y


def _sweep(n=2000):
    """Logits whose true-class probability sweeps (0, 1) finely: any shift of an attack's boundary shows."""
    z = np.zeros((n, C))
    z[:, 0] = np.linspace(-6, 12, n)
    return z, np.zeros(n, np.int64)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------- accuracy.py
def test_softmax_entropy_ce_match_scipy(rng):
    z, y = _logits(rng, 50, 2.0)
    z[0] = [800.0, 0, 0, 0, -800.0]  # overflow guard
    np.testing.assert_allclose(M.softmax(z), sp_softmax(z, axis=1), atol=1e-12)
    p = sp_softmax(z, axis=1)
    np.testing.assert_allclose(M.entropy(p), sp_entropy(p, axis=1), atol=1e-10)
    expected_ce = -np.log(np.clip(p[np.arange(50), y], 1e-300, None))
    np.testing.assert_allclose(M.cross_entropy_per_sample(z[1:], y[1:]), expected_ce[1:], rtol=1e-9)


def test_accuracy_and_per_class(rng):
    z, y = _logits(rng, 200, 1.0)
    assert M.accuracy(z, y) == pytest.approx(accuracy_score(y, z.argmax(1)))
    y[y == 3] = 2  # class 3 absent
    pc = M.per_class_accuracy(z, y, num_classes=C + 1)
    for c in range(C + 1):
        mask = y == c
        if mask.any():
            assert pc[c] == pytest.approx(accuracy_score(y[mask], z[mask].argmax(1)))
        else:
            assert np.isnan(pc[c])


def test_accepts_torch_tensors(rng):
    torch = pytest.importorskip("torch")
    z, y = _logits(rng, 30, 1.0)
    zt = torch.tensor(z, requires_grad=True)
    assert M.accuracy(zt, torch.tensor(y)) == pytest.approx(M.accuracy(z, y))


# ---------------------------------------------------------------- divergence.py
def test_js_zrf_match_scipy(rng):
    p, _ = _logits(rng, 40, 1.0)
    q, _ = _logits(rng, 40, 0.0)
    ref = np.mean(jensenshannon(sp_softmax(p, 1), sp_softmax(q, 1), axis=1) ** 2)  # base e
    assert M.js_divergence(p, q) == pytest.approx(ref, rel=1e-9)
    assert M.zrf(p, q) == pytest.approx(1 - ref, rel=1e-9)
    assert M.js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    far = np.array([[100.0, 0, 0]]), np.array([[0, 100.0, 0]])
    assert M.js_divergence(*far) == pytest.approx(math.log(2), rel=1e-6)


def test_avg_gap_and_ain():
    u = {"ua": 0.9, "ra": 0.95, "ta": 0.90, "mia_efficacy": 0.8}
    r = {"ua": 1.0, "ra": 0.97, "ta": 0.92, "mia_efficacy": 1.0}
    assert M.avg_gap(u, r) == pytest.approx((0.1 + 0.02 + 0.02 + 0.2) / 4)
    with pytest.raises(KeyError):
        M.avg_gap({"ua": 1.0}, r)
    assert M.relearn_ain(30, 60) == 0.5
    assert math.isinf(M.relearn_ain(3, 0)) and math.isnan(M.relearn_ain(0, 0))


# ---------------------------------------------------------------- mia.py: population attacks
def test_svc_confidence_matches_sklearn_and_direction(rng):
    (z1, y1), (z2, y2) = _logits(rng, 200, 6.0), _logits(rng, 100, 0.0)
    zr, yr = np.vstack([z1, z2]), np.r_[y1, y2]  # only the first |D_t| = 200 are used as members
    zt, yt = _logits(rng, 200, 1.0)
    zf_mem, yf = _logits(rng, 100, 6.0)
    zf_forgot, _ = _logits(rng, 100, -1.0, labels=yf)
    zs, ys = _sweep()
    def conf(z, y):
        return sp_softmax(z, 1)[np.arange(len(y)), y][:, None]

    x = np.vstack([conf(zr, yr)[:200], conf(zt, yt)])
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x, np.r_[np.ones(200), np.zeros(200)])
    for zf, yf_ in ((zf_forgot, yf), (zs, ys)):
        ref = np.mean(clf.predict(conf(zf, yf_)) == 0)
        assert M.svc_confidence_mia(zr, yr, zt, yt, zf, yf_, bin_width=None) == pytest.approx(ref)
        # p_y merged in 2e-3 bins: the boundary moves by about the sweep's spacing at most
        assert M.svc_confidence_mia(zr, yr, zt, yt, zf, yf_) == pytest.approx(ref, abs=2.0 / len(yf_))
    # identical points merged into one weighted point: the same SVC exactly (a width no two values share)
    xq = np.round(x, 2)
    exact = SVC(C=3, gamma="auto", kernel="rbf").fit(xq, np.r_[np.ones(200), np.zeros(200)])
    grid = np.linspace(0, 1, 101)[:, None]
    xm, ym, wm = M.mia._merged(xq, np.r_[np.ones(200, np.int64), np.zeros(200, np.int64)], 1e-9)
    assert len(xm) < len(np.unique(xq)) * 2 + 1 and wm.sum() == 400
    merged = SVC(C=3, gamma="auto", kernel="rbf").fit(xm, ym, sample_weight=wm)
    assert merged.decision_function(grid) == pytest.approx(exact.decision_function(grid), abs=1e-3)
    got = M.svc_confidence_mia(zr, yr, zt, yt, zf_forgot, yf)
    remember = M.svc_confidence_mia(zr, yr, zt, yt, zf_mem, yf)
    assert remember < 0.3 and got > 0.7


def test_entropy_member_rate_matches_sklearn_and_direction(rng):
    zr, _ = _logits(rng, 400, 6.0)
    zt, _ = _logits(rng, 80, 1.0)  # imbalanced on purpose: class_weight="balanced" matters
    zf_mem, yf = _logits(rng, 100, 6.0)
    zf_forgot, _ = _logits(rng, 100, 0.0, labels=yf)
    zs, _ = _sweep()
    def ent(z):
        return sp_entropy(sp_softmax(z, 1), axis=1)[:, None]

    clf = LogisticRegression(class_weight="balanced")
    clf.fit(np.vstack([ent(zr), ent(zt)]), np.r_[np.ones(400), np.zeros(80)])
    for zf in (zf_forgot, zs):
        ref = np.mean(clf.predict(ent(zf)) == 1)
        assert M.entropy_member_rate(zr, zt, zf) == pytest.approx(ref)
    got = M.entropy_member_rate(zr, zt, zf_forgot)
    assert M.entropy_member_rate(zr, zt, zf_mem) > 0.7 and got < 0.3


def test_loss_cv_mia_and_fs_match_sklearn(rng):
    lf, lt = rng.exponential(0.2, 120), rng.exponential(1.0, 120)
    cv = StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=0)  # the kit's (default) split
    x, y = np.r_[lf, lt][:, None], np.r_[np.ones(120), np.zeros(120)]
    converged = LogisticRegression(tol=1e-12, max_iter=100_000)  # the kit's model, solved to the optimum
    ref = cross_val_score(converged, x, y, cv=cv, scoring="accuracy").mean()
    assert M.loss_cv_mia(lf, lt) == pytest.approx(ref)
    assert M.lra_fs(lf, lt) == pytest.approx(abs(0.5 - ref))
    assert ref > 0.6
    same = M.loss_cv_mia(rng.exponential(1.0, 300), rng.exponential(1.0, 200))  # retrain-like, unbalanced
    assert abs(same - 0.5) < 0.1
    assert M.loss_cv_mia(np.zeros(50), np.ones(80)) == 1.0


def test_logistic_regression_1d_matches_converged_sklearn(rng):
    xs, ys, ref = [], [], []
    for scale in (0.005, 0.3, 1.0, 40.0):  # tiny losses: sklearn's default tol stops near w = 0 there
        x = np.r_[rng.exponential(scale * 0.5, 90), rng.exponential(scale, 90)]
        y = np.r_[np.ones(90), np.zeros(90)]
        clf = LogisticRegression(tol=1e-12, max_iter=100_000).fit(x[:, None], y)
        xs.append(x), ys.append(y), ref.append((clf.coef_[0, 0], clf.intercept_[0]))
    w, b = M.logistic_regression_1d(np.array(xs), np.array(ys))
    assert np.c_[w, b] == pytest.approx(np.array(ref), rel=1e-4, abs=1e-6)


def test_loss_cv_draws_are_seeded_and_independent(rng):
    lf, lt = rng.exponential(0.5, 150), rng.exponential(1.0, 90)
    seeds = [M.draw_seed(0, d) for d in range(6)]
    assert len(set(seeds)) == 6 and M.draw_seed(1, 0) not in seeds and M.draw_seed(0, 3) == seeds[3]
    acc = M.loss_cv_accuracies(lf, lt, seeds)
    assert acc == pytest.approx([M.loss_cv_mia(lf, lt, seed=s) for s in seeds])  # batched = one by one
    assert len(set(np.round(acc, 6))) > 1  # each draw has its own subsample and CV shuffle


def test_lra_fr_matches_sklearn_and_direction(rng):
    ym = np.full(150, 4)  # class forgetting: every forget sample has the forget class as label
    zm, _ = _logits(rng, 150, 6.0, labels=ym)
    zn, _ = _logits(rng, 150, 1.0, labels=ym)
    zu_mem, _ = _logits(rng, 150, 6.0, labels=ym)
    zu_forgot, _ = _logits(rng, 150, -3.0, labels=ym)
    pm, pn = sp_softmax(zm, 1), sp_softmax(zn, 1)
    clf = make_pipeline(StandardScaler(), SVC(kernel="linear"))  # the authors' classifier
    clf.fit(np.vstack([pm, pn]), np.r_[np.ones(150), np.zeros(150)])
    zu_mid, _ = _logits(rng, 150, 3.0, labels=ym)
    for zu in (zu_forgot, zu_mid):
        ref = 1 - np.mean(clf.predict(sp_softmax(zu, 1)) == 1)
        assert M.lra_fr(pm, pn, sp_softmax(zu, 1)) == pytest.approx(ref)
    got = M.lra_fr(pm, pn, sp_softmax(zu_forgot, 1))
    assert M.lra_fr(pm, pn, sp_softmax(zu_mem, 1)) < 0.3 and got > 0.7


# ---------------------------------------------------------------- mia.py: per-example attacks
def test_logit_scaled_confidence_stable(rng):
    z, y = _logits(rng, 30, 1.0)
    p = sp_softmax(z, 1)[np.arange(30), y]
    np.testing.assert_allclose(M.logit_scaled_confidence(z, y), np.log(p) - np.log1p(-p), rtol=1e-8)
    phi = M.logit_scaled_confidence(np.array([[60.0, 0.0, 0.0]]), np.array([0]))
    assert np.isfinite(phi).all() and phi[0] == pytest.approx(60 - math.log(2))


def test_roc_summary_matches_sklearn(rng):
    m = np.round(rng.normal(1, 1, 300), 1)  # rounding creates ties
    n = np.round(rng.normal(0, 1, 400), 1)
    s, lab = np.r_[m, n], np.r_[np.ones(300), np.zeros(400)]
    out = M.roc_summary(m, n)
    assert out["auc"] == pytest.approx(roc_auc_score(lab, s))
    fpr, tpr, _ = roc_curve(lab, s, drop_intermediate=False)
    assert out["tpr_at_1fpr"] == pytest.approx(tpr[fpr <= 0.01].max())
    brute = max(((s[lab == 1] >= t).mean() + (s[lab == 0] < t).mean()) / 2 for t in np.r_[s, np.inf])
    assert out["bal_acc"] == pytest.approx(brute)


def test_ulira_matches_direct_gaussians(rng):
    n_ex, n_sh = 80, 16
    mu_u, mu_r = rng.normal(2, 1, n_ex), rng.normal(0, 1, n_ex)
    ins, outs = rng.normal(mu_u, 0.7, (n_sh, n_ex)), rng.normal(mu_r, 0.7, (n_sh, n_ex))
    is_u = rng.random(n_ex) < 0.5
    target = np.where(is_u, rng.normal(mu_u, 0.7), rng.normal(mu_r, 0.7))
    for fix in (False, True):
        if fix:
            sd_i = np.sqrt(ins.var(0).mean())
            sd_o = np.sqrt(outs.var(0).mean())
        else:
            sd_i, sd_o = ins.std(0), outs.std(0)
        llr = norm.logpdf(target, ins.mean(0), sd_i) - norm.logpdf(target, outs.mean(0), sd_o)
        np.testing.assert_allclose(M.ulira_scores(target, ins, outs, fix_variance=fix), llr, rtol=1e-10)
        got = M.ulira(target, ins, outs, is_u, fix_variance=fix)
        assert got["auc"] == pytest.approx(roc_auc_score(is_u, llr))
        assert got["auc"] > 0.8 and got["bal_acc"] > 0.7
    same = M.ulira(target, outs, rng.normal(mu_r, 0.7, (n_sh, n_ex)), is_u)  # unlearned == retrained
    assert abs(same["auc"] - 0.5) < 0.2
