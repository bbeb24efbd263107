"""Membership-inference attacks used as forgetting metrics (pure functions over model outputs).

Population attacks fit one attacker over all samples; U-LiRA fits per-example Gaussians over shadow models.
Each function states its direction and its retrain reference (see metrics.md / info.py).
"""
from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .accuracy import _logits_labels, as_numpy, entropy, softmax


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


def svc_confidence_mia(retain_logits, retain_labels, test_logits, test_labels,
                       forget_logits, forget_labels, seed: int = 0) -> float:
    """MIA-Efficacy of Unlearn-Sparse (Jia et al., NeurIPS'23) and SalUn (Fan et al., ICLR'24).

    Feature p_y; attacker SVC(C=3, gamma="auto", rbf) fit on members = the first |D_t| samples of D_r and
    non-members = D_t (pass retain-class test samples for class forgetting); both sides cut to the smaller
    size. Returns the fraction of D_f predicted non-member: higher = more forgetting, Retrain ~ 1 (class
    forgetting).
    """
    c_r = true_class_confidence(retain_logits, retain_labels)
    c_t = true_class_confidence(test_logits, test_labels)
    c_f = true_class_confidence(forget_logits, forget_labels)
    n = min(len(c_r), len(c_t))
    x, y = _member_data(c_r[:n], c_t[:n])
    clf = SVC(C=3, gamma="auto", kernel="rbf", random_state=seed).fit(x, y)
    return float(np.mean(clf.predict(c_f[:, None]) == 0))


def entropy_member_rate(retain_logits, test_logits, forget_logits, seed: int = 0,
                        max_per_side: int = 5000) -> float:
    """Entropy attack of SSD (Foster et al., AAAI'24), Bad Teacher lineage (Chundawat et al., AAAI'23).

    Feature H(softmax(z)); LogisticRegression(class_weight="balanced") fit on D_r (member) vs D_t
    (non-member), each deterministically subsampled (``seed``) to at most ``max_per_side``. Returns the
    fraction of D_f predicted member: lower = more forgetting; compare with Retrain's value.
    """
    rng = np.random.default_rng(seed)
    h_r = _subsample(entropy(softmax(retain_logits)), max_per_side, rng)
    h_t = _subsample(entropy(softmax(test_logits)), max_per_side, rng)
    h_f = entropy(softmax(forget_logits))
    x, y = _member_data(h_r, h_t)
    clf = LogisticRegression(class_weight="balanced").fit(x, y)
    return float(np.mean(clf.predict(h_f[:, None]) == 1))


def loss_cv_mia(forget_losses, forget_test_losses, n_splits: int = 10, seed: int = 0) -> float:
    """Loss attack of the NeurIPS'23 Unlearning Challenge starting kit (also SCRUB, Kurmanji et al. 2023).

    Per-sample losses on D_f (member) vs held-out samples (non-member; forget-class test for class
    forgetting), subsampled (``seed``) to equal size; LogisticRegression; mean accuracy over
    StratifiedShuffleSplit(n_splits) cross-validation with scikit-learn's default 10% held out per split, as
    in the kit and in the LRA-NPP authors' Fs. Retrain ~ 0.5; higher = the forget set is still recognisable.
    """
    rng = np.random.default_rng(seed)
    lf, lt = as_numpy(forget_losses, np.float64).ravel(), as_numpy(forget_test_losses, np.float64).ravel()
    n = min(len(lf), len(lt))
    x, y = _member_data(_subsample(lf, n, rng), _subsample(lt, n, rng))
    cv = StratifiedShuffleSplit(n_splits=n_splits, random_state=seed)
    return float(np.mean(cross_val_score(LogisticRegression(), x, y, cv=cv, scoring="accuracy")))


def lra_fr(original_forget_probs, original_forget_test_probs, unlearned_forget_probs, seed: int = 0) -> float:
    """Fr of LRA-NPP (Chang et al., arXiv 2410.23693).

    StandardScaler + a linear-kernel SVC (hinge loss, unpenalised intercept: the authors' classifier; a
    LinearSVC's squared hinge moves the boundary by a few points of Fr) fit on the ORIGINAL model's softmax
    vectors, members = forget-class train, non-members = forget-class test (balanced by subsampling with
    ``seed``).
    Fr = 1 - share of the unlearned model's forget-class train outputs classified member.
    Higher = more forgetting; Retrain ~ 1.
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

    Lower = more forgetting; Retrain ~ 0.
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
