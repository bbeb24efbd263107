"""Membership-inference attacks used as forgetting metrics (pure functions over model outputs).

Population attacks fit one attacker over all samples; U-LiRA fits per-example Gaussians over shadow models.
Each function states its direction and its retrain reference (see metrics.md / info.py).
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit, logsumexp
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .accuracy import _logits_labels, as_numpy, entropy, softmax


def draw_seed(seed: int, draw: int) -> int:
    """Seed of attack draw ``draw`` under ``eval.seed`` = ``seed``: one independent stream per pair."""
    return int(np.random.SeedSequence([int(seed), int(draw)]).generate_state(1)[0])


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """First-axis subsample of ``x`` to ``n`` rows, original order kept; identity when len(x) <= n."""
    if len(x) <= n:
        return x
    return x[np.sort(rng.choice(len(x), size=n, replace=False))]


def _member_data(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([members, nonmembers])
    x = x.reshape(len(x), -1)
    y = np.concatenate([np.ones(len(members), np.int64), np.zeros(len(nonmembers), np.int64)])
    return x, y


def true_class_confidence(logits, labels) -> np.ndarray:
    """Softmax probability of the true label, p_y, shape (n,)."""
    z, y = _logits_labels(logits, labels)
    return softmax(z)[np.arange(len(y)), y]


def _merged(x: np.ndarray, y: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D points of one label within a bin of ``width`` merged into one point (their mean) weighted by their
    count. For an SVC the merge of *identical* points is exact (SVC's per-sample C = C x weight: the copies'
    dual variables add up to one bounded by the sum); for points within ``width`` it moves each by less than
    ``width``."""
    key = np.floor(x[:, 0] / width).astype(np.int64) * 2 + y
    _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    xs = np.bincount(inv, weights=x[:, 0]) / cnt
    ys = np.zeros(len(cnt), np.int64)
    ys[inv] = y
    return xs[:, None], ys, cnt.astype(np.float64)


def svc_confidence_mia(retain_logits, retain_labels, test_logits, test_labels,
                       forget_logits, forget_labels, seed: int = 0, bin_width: float | None = 2e-3) -> float:
    """MIA-Efficacy of Unlearn-Sparse (Jia et al., NeurIPS'23) and SalUn (Fan et al., ICLR'24).

    Feature p_y; attacker SVC(C=3, gamma="auto", rbf) fit on members = the first |D_t| samples of D_r and
    non-members = D_t (pass retain-class test samples for class forgetting); both sides cut to the smaller
    size. Returns the fraction of D_f predicted non-member: higher = more forgetting, Retrain ~ 1 (class
    forgetting). ``bin_width``: p_y values of one side within a bin merge into one weighted point before the
    fit (``_merged``): 10x faster on 3,600 points (the exact fit is ~0.25 s, and runs once per attack draw);
    on the Fashion-MNIST default (8 draws each of 4 models) the score moved by at most one of 270 D_f
    images. None: the exact fit.
    """
    c_r = true_class_confidence(retain_logits, retain_labels)
    c_t = true_class_confidence(test_logits, test_labels)
    c_f = true_class_confidence(forget_logits, forget_labels)
    n = min(len(c_r), len(c_t))
    x, y = _member_data(c_r[:n], c_t[:n])
    w = None
    if bin_width:
        x, y, w = _merged(x, y, bin_width)
    clf = SVC(C=3, gamma="auto", kernel="rbf", random_state=seed).fit(x, y, sample_weight=w)
    return float(np.mean(clf.predict(c_f[:, None]) == 0))


def entropy_member_rate(retain_logits, test_logits, forget_logits) -> float:
    """Entropy attack of SSD (Foster et al., AAAI'24), Bad Teacher lineage (Chundawat et al., AAAI'23).

    Feature H(softmax(z)); LogisticRegression(class_weight="balanced") fit on all of D_r (member) vs all of
    D_t (non-member), as SSD's ``get_membership_attack_prob`` does: no sample, so no draw. Returns the
    fraction of D_f predicted member. Not "lower is better": a collapsed model scores 0 and a retrained one
    does not (0.31 on the Fashion-MNIST default); compare with Retrain's value.
    """
    h_r = entropy(softmax(retain_logits))
    h_t = entropy(softmax(test_logits))
    h_f = entropy(softmax(forget_logits))
    x, y = _member_data(h_r, h_t)
    clf = LogisticRegression(class_weight="balanced").fit(x, y)
    return float(np.mean(clf.predict(h_f[:, None]) == 1))


def logistic_regression_1d(x: np.ndarray, y: np.ndarray, c: float = 1.0, iters: int = 100):
    """Many 1-D logistic regressions at once: rows of ``x``, ``y`` (P, n) are P problems. Minimises
    0.5 w^2 + c sum log(1 + exp(-(2y - 1)(w x + b))), scikit-learn's LogisticRegression() objective
    (intercept unpenalised), by damped Newton steps. Returns (w, b), each (P,)."""
    p_count = len(x)
    w, b = np.zeros(p_count), np.zeros(p_count)

    def objective(w, b):
        z = w[:, None] * x + b[:, None]
        return 0.5 * w ** 2 + c * np.sum(np.logaddexp(0.0, z) - y * z, axis=1)

    f = objective(w, b)
    for _ in range(iters):
        p = expit(w[:, None] * x + b[:, None])
        r, s = p - y, p * (1.0 - p)
        gw, gb = w + c * np.sum(r * x, axis=1), c * np.sum(r, axis=1)
        if np.max(np.abs(gw) + np.abs(gb)) < 1e-9:
            break
        hww, hwb, hbb = 1.0 + c * np.sum(s * x * x, axis=1), c * np.sum(s * x, axis=1), c * np.sum(s, axis=1)
        det = np.maximum(hww * hbb - hwb ** 2, 1e-300)
        dw, db = (hbb * gw - hwb * gb) / det, (hww * gb - hwb * gw) / det
        t = np.ones(p_count)
        for _ in range(40):  # halve each problem's step until its objective does not rise
            f_new = objective(w - t * dw, b - t * db)
            worse = f_new > f + 1e-12 * np.abs(f)
            if not worse.any():
                break
            t[worse] *= 0.5
        w, b, f = w - t * dw, b - t * db, np.minimum(f_new, f)
    return w, b


def loss_cv_accuracies(forget_losses, forget_test_losses, seeds, n_splits: int = 10) -> np.ndarray:
    """``loss_cv_mia`` for each seed in ``seeds`` (one draw each), all draws' fits solved at once."""
    lf, lt = as_numpy(forget_losses, np.float64).ravel(), as_numpy(forget_test_losses, np.float64).ravel()
    n = min(len(lf), len(lt))
    tr_x, tr_y, te_x, te_y = [], [], [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        x, y = _member_data(_subsample(lf, n, rng), _subsample(lt, n, rng))
        for tr, te in StratifiedShuffleSplit(n_splits=n_splits, random_state=seed).split(x, y):
            tr_x.append(x[tr, 0]), tr_y.append(y[tr]), te_x.append(x[te, 0]), te_y.append(y[te])
    w, b = logistic_regression_1d(np.array(tr_x), np.array(tr_y, np.float64))
    te_x, te_y = np.array(te_x), np.array(te_y)
    acc = np.mean(((w[:, None] * te_x + b[:, None]) > 0) == te_y, axis=1)  # sklearn: member iff score > 0
    return acc.reshape(len(seeds), n_splits).mean(axis=1)


def loss_cv_mia(forget_losses, forget_test_losses, n_splits: int = 10, seed: int = 0) -> float:
    """Loss attack of the NeurIPS'23 Unlearning Challenge starting kit (also SCRUB, Kurmanji et al. 2023).

    Per-sample losses on D_f (member) vs held-out samples (non-member; forget-class test for class
    forgetting), subsampled (``seed``) to equal size; LogisticRegression; mean accuracy over
    StratifiedShuffleSplit(n_splits) cross-validation with scikit-learn's default 10% held out per split, as
    in the kit and in the LRA-NPP authors' Fs. Retrain ~ 0.5; higher = the forget set is still recognisable.
    The regressions are solved to convergence by ``logistic_regression_1d`` (scikit-learn's objective; its
    lbfgs, stopping at tol = 1e-4, can end near w = 0 when every loss is tiny and then reports ~0.5).
    """
    return float(loss_cv_accuracies(forget_losses, forget_test_losses, [seed], n_splits)[0])


def lra_fr(original_forget_probs, original_forget_test_probs, unlearned_forget_probs, seed: int = 0) -> float:
    """Fr of LRA-NPP (Chang et al., arXiv 2410.23693).

    StandardScaler + a linear-kernel SVC (hinge loss, unpenalised intercept: the authors' classifier; a
    LinearSVC's squared hinge moves the boundary by a few points of Fr) fit on the ORIGINAL model's softmax
    vectors, members = forget-class train, non-members = forget-class test (balanced by subsampling with
    ``seed``: the authors draw the members from a shuffled loader, so each evaluation is a new draw).
    Fr = 1 - share of the unlearned model's forget-class train outputs classified member. The original's
    member and non-member outputs are both near one-hot, so the boundary, and with it Fr, moves a lot from
    draw to draw: report a mean over draws. Retrain ~ 0.9 (not 1: the attack calls some of its outputs
    member); a collapsed model can score 1, so read it as distance to Retrain.
    """
    rng = np.random.default_rng(seed)
    pm = as_numpy(original_forget_probs, np.float64)
    pn = as_numpy(original_forget_test_probs, np.float64)
    n = min(len(pm), len(pn))
    x, y = _member_data(_subsample(pm, n, rng), _subsample(pn, n, rng))
    clf = make_pipeline(StandardScaler(), SVC(kernel="linear", random_state=seed)).fit(x, y)
    pu = as_numpy(unlearned_forget_probs, np.float64)
    return float(1.0 - np.mean(clf.predict(pu.reshape(len(pu), -1)) == 1))


def lra_fs(forget_losses, forget_test_losses, seed: int = 0) -> float:
    """Fs of LRA-NPP (Chang et al., arXiv 2410.23693): |0.5 - A|, A = loss_cv_mia accuracy over 10 splits.

    Not "lower is better": a chance-level attack on a few hundred images still lands a few points from 0.5
    (Retrain ~ 0.04 on the Fashion-MNIST default) and a collapsed model, whose losses are all equal, scores
    exactly 0; compare with Retrain's value.
    """
    return abs(0.5 - loss_cv_mia(forget_losses, forget_test_losses, n_splits=10, seed=seed))


def logit_scaled_confidence(logits, labels) -> np.ndarray:
    """LiRA's phi = log p_y - log(1 - p_y) = z_y - logsumexp_{c != y} z_c (Carlini et al., S&P'22), (n,).

    Computed from logits so it stays finite when p_y rounds to 1.
    """
    z, y = _logits_labels(logits, labels)
    rows = np.arange(len(y))
    others = z.copy()
    others[rows, y] = -np.inf
    return z[rows, y] - logsumexp(others, axis=1)


def roc_curve_points(member_scores, nonmember_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC of the rule "member iff score >= threshold": (fpr, tpr, thresholds), from (0, 0) to (1, 1)."""
    m, nm = as_numpy(member_scores, np.float64).ravel(), as_numpy(nonmember_scores, np.float64).ravel()
    s = np.concatenate([m, nm])
    lab = np.concatenate([np.ones(len(m)), np.zeros(len(nm))])
    order = np.argsort(-s, kind="stable")
    s, lab = s[order], lab[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each run of tied scores
    tps, fps = np.cumsum(lab)[last], np.cumsum(1 - lab)[last]
    tpr = np.r_[0.0, tps / max(len(m), 1)]
    fpr = np.r_[0.0, fps / max(len(nm), 1)]
    return fpr, tpr, np.r_[np.inf, s[last]]


def roc_summary(member_scores, nonmember_scores, fpr_budget: float = 0.01) -> dict:
    """AUC (trapezoid, ties count 1/2), best-threshold balanced accuracy, TPR at FPR <= ``fpr_budget``."""
    fpr, tpr, _ = roc_curve_points(member_scores, nonmember_scores)
    return {
        "auc": float(np.trapezoid(tpr, fpr)),
        "bal_acc": float(np.max((tpr + 1.0 - fpr) / 2.0)),
        "tpr_at_1fpr": float(np.max(tpr[fpr <= fpr_budget])),
    }


def _gaussian_params(shadow: np.ndarray, fix_variance: bool, min_std: float) -> tuple[np.ndarray, np.ndarray]:
    mu = shadow.mean(axis=0)
    sd = np.sqrt(shadow.var(axis=0).mean()) * np.ones_like(mu) if fix_variance else shadow.std(axis=0)
    return mu, np.maximum(sd, min_std)


def ulira_scores(target_scores, in_scores, out_scores, fix_variance: bool = False,
                 min_std: float = 1e-6) -> np.ndarray:
    """Per-target U-LiRA log-likelihood ratio log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out).

    Shapes as in ``ulira``; the result has the shape of ``target_scores``. Higher = looks unlearned.
    """
    ins, outs = as_numpy(in_scores, np.float64), as_numpy(out_scores, np.float64)
    if ins.ndim != 2 or outs.ndim != 2 or ins.shape[1] != outs.shape[1]:
        raise ValueError(f"in/out scores must be (n_shadows, n_examples), got {ins.shape} and {outs.shape}")
    if min(len(ins), len(outs)) < 2:
        raise ValueError("U-LiRA needs at least 2 shadow models per side")
    mu_in, sd_in = _gaussian_params(ins, fix_variance, min_std)
    mu_out, sd_out = _gaussian_params(outs, fix_variance, min_std)
    t = as_numpy(target_scores, np.float64)
    return norm.logpdf(t, mu_in, sd_in) - norm.logpdf(t, mu_out, sd_out)


def ulira(target_scores, in_scores, out_scores, target_is_unlearned, fix_variance: bool = False,
          min_std: float = 1e-6) -> dict:
    """U-LiRA (Hayes et al. 2024, "Inexact unlearning needs more careful evaluations"), built on LiRA.

    ``in_scores`` (n_in, n_examples): phi of shadow models trained on all data then unlearned with the method;
    ``out_scores`` (n_out, n_examples): phi of shadows retrained without the forget set. Per example fit
    N(mu_in, s_in), N(mu_out, s_out) (``fix_variance``: one pooled std per side, for few shadows); a target
    score phi_i gets log N(phi_i; in) - log N(phi_i; out). ``target_scores`` has shape (n_examples,) or
    (n_targets, n_examples); ``target_is_unlearned`` (same shape) marks targets from unlearned models
    (positives). Returns auc, bal_acc (best threshold), tpr_at_1fpr; ideal (indistinguishable) = 0.5/0.5/0.01.
    """
    llr = ulira_scores(target_scores, in_scores, out_scores, fix_variance, min_std)
    is_u = np.broadcast_to(as_numpy(target_is_unlearned).astype(bool), llr.shape)
    return roc_summary(llr[is_u], llr[~is_u])
