"""The computations behind the metric families (``unlearn_bench/eval/families/``), from collected logits
(no model runs here).

Inputs are dicts ``split -> logits`` / ``split -> labels`` over the splits of ``evaluation.SPLITS``.
Definitions follow metrics.md (population MIAs of Unlearn-Sparse/SalUn, SSD, the NeurIPS'23 kit and
LRA-NPP's Fr/Fs; SalUn's Avg. Gap; Bad Teacher's JS distances and ZRF; U-LiRA of Hayes et al. 2024; the
challenge's forgetting quality of Triantafillou et al. 2024). Each family states its keys' ``MetricInfo``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from unlearn_bench import metrics as M
from unlearn_bench.eval.outputs import SPLITS


def _test(logits: dict, labels: dict) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([logits["forget_test"], logits["retain_test"]]),
            np.concatenate([labels["forget_test"], labels["retain_test"]]))


def accuracies(logits: dict, labels: dict, prefix: str = "") -> dict:
    """Top-1 accuracy per split, and ``acc/test`` over the whole test split (forget class included)."""
    out = {f"{prefix}acc/{s}": M.accuracy(logits[s], labels[s]) for s in SPLITS if s in logits}
    out[f"{prefix}acc/test"] = M.accuracy(*_test(logits, labels))
    return out


def population_mias(logits: dict, labels: dict, original_logits: dict, seed: int = 0, draws: int = 10,
                    prefix: str = "") -> dict:
    """The population attacks, each fit on this model's own outputs (Fr: on the original's, per LRA-NPP).

    Every attack that fits on a sample is run on ``draws`` samples, draw d seeded by ``draw_seed(seed, d)``;
    ``<key>`` is the mean over draws and ``<key>_std`` their standard deviation (ddof = 1).
    ``mia/svc_confidence``: members = a random |retain-class test| of D_r (Sparse/SalUn take a fixed one:
    the first), non-members = the retain-class test samples (the forgotten class removed from D_t, as
    Sparse/SalUn do); score on D_f. Draw: the subset of D_r.
    ``mia/entropy_member_rate``: all of D_r vs the whole test split (forget class included: SSD's
    ``valid_dl``), share of D_f called member. SSD uses all the data: no draw, ``_std`` = 0.
    ``mia/loss_cv_acc``: loss of D_f vs forget-class test, the larger side subsampled to the smaller, 10-split
    CV accuracy; ``mia/fs`` = |0.5 - it| per draw (the same 10-split attack LRA-NPP's Fs uses, so it is
    computed once). Draw: the subsample and the CV shuffle.
    ``mia/fr``: members = min(|D_f|, |forget-class test|) images of D_f, non-members = as many forget-class
    test images. Draw: which images (the authors take them from a shuffled loader).
    """
    ft, fte, rt, rte = "forget_train", "forget_test", "retain_train", "retain_test"
    if len(labels[ft]) == 0 or len(labels[rte]) < 2:
        return {}
    if draws < 1:
        raise ValueError(f"eval.mia_draws must be >= 1, got {draws}")
    seeds = [M.draw_seed(seed, d) for d in range(draws)]
    n = min(len(labels[rte]), len(labels[rt]))
    per_draw: dict[str, list] = {"mia/svc_confidence": []}
    for s in seeds:  # a random, not the first, |D_t| of D_r
        pick = np.sort(np.random.default_rng(s).choice(len(labels[rt]), size=n, replace=False))
        per_draw["mia/svc_confidence"].append(M.svc_confidence_mia(
            logits[rt][pick], labels[rt][pick], logits[rte], labels[rte], logits[ft], labels[ft], seed=s))
    per_draw["mia/entropy_member_rate"] = [M.entropy_member_rate(logits[rt], _test(logits, labels)[0],
                                                                 logits[ft])]
    if len(labels[fte]) >= 6:  # 10% held out of 2 x 6 images is 2: the fewest a stratified split can take
        acc = M.loss_cv_accuracies(M.cross_entropy_per_sample(logits[ft], labels[ft]),
                                   M.cross_entropy_per_sample(logits[fte], labels[fte]), seeds, n_splits=10)
        per_draw["mia/loss_cv_acc"], per_draw["mia/fs"] = acc, np.abs(0.5 - acc)
        pm, pn, pu = (M.softmax(z) for z in (original_logits[ft], original_logits[fte], logits[ft]))
        per_draw["mia/fr"] = [M.lra_fr(pm, pn, pu, seed=s) for s in seeds]
    out = {}
    for key, values in per_draw.items():
        v = np.asarray(values, np.float64)
        out[key] = float(v.mean())
        if key == "mia/entropy_member_rate":  # no sample: it does not vary, whatever the number of draws
            out[f"{key}_std"] = 0.0
        else:  # one draw has no spread: NaN, written as null
            out[f"{key}_std"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
    return {prefix + k: v for k, v in out.items()}


def attack_rocs(logits: dict, labels: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Member / non-member scores (D_f vs forget-class test, higher = member) of the threshold attacks."""
    ft, fte = "forget_train", "forget_test"
    if len(labels[ft]) == 0 or len(labels[fte]) == 0:
        return {}
    pf, pt = M.softmax(logits[ft]), M.softmax(logits[fte])
    return {
        "loss": (-M.cross_entropy_per_sample(logits[ft], labels[ft]),
                 -M.cross_entropy_per_sample(logits[fte], labels[fte])),
        "confidence": (M.true_class_confidence(logits[ft], labels[ft]),
                       M.true_class_confidence(logits[fte], labels[fte])),
        "entropy": (-M.entropy(pf), -M.entropy(pt)),
    }


def strongest_roc(scores: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """ROC points of every attack in ``scores``, with a column marking the strongest (max |AUC - 0.5|)."""
    frames, best, best_gap = [], None, -1.0
    for name, (m, nm) in scores.items():
        fpr, tpr, _ = M.roc_curve_points(m, nm)
        auc = M.roc_summary(m, nm)["auc"]
        frames.append(pd.DataFrame({"attack": name, "fpr": fpr, "tpr": tpr, "auc": auc}))
        if abs(auc - 0.5) > best_gap:
            best, best_gap = name, abs(auc - 0.5)
    if not frames:
        return pd.DataFrame(columns=["attack", "fpr", "tpr", "auc", "strongest"])
    df = pd.concat(frames, ignore_index=True)
    df["strongest"] = df["attack"] == best
    return df


def per_class(models: dict[str, dict], labels: dict, num_classes: int) -> pd.DataFrame:
    """Per-class top-1 accuracy on the train split (D_f + D_r) and the test split, one column per model."""
    cols = {"class": np.arange(num_classes)}
    for part, splits in (("train", ("forget_train", "retain_train")),
                         ("test", ("forget_test", "retain_test"))):
        y = np.concatenate([labels[s] for s in splits])
        cols[f"n_{part}"] = np.bincount(y, minlength=num_classes)
        for name, logits in models.items():
            z = np.concatenate([logits[s] for s in splits])
            cols[f"{name}_{part}"] = M.per_class_accuracy(z, y, num_classes)
    return pd.DataFrame(cols)


def oracle_distances(logits: dict, retrain_logits: dict, labels: dict, mia: dict, retrain_mia: dict) -> dict:
    """Distances to the retrained model: SalUn's Avg. Gap over UA, RA, TA, MIA-Efficacy (all in [0, 1]) and
    the mean JS divergence of the softmax outputs on D_f and on the whole test split."""
    def salun(lg, m):
        return {"ua": 1.0 - M.accuracy(lg["forget_train"], labels["forget_train"]),
                "ra": M.accuracy(lg["retain_train"], labels["retain_train"]),
                "ta": M.accuracy(lg["retain_test"], labels["retain_test"]),
                "mia_efficacy": m.get("mia/svc_confidence", float("nan"))}
    test_u, _ = _test(logits, labels)
    test_r, _ = _test(retrain_logits, labels)
    return {"gap/avg_to_retrain": M.avg_gap(salun(logits, mia), salun(retrain_logits, retrain_mia)),
            "dist/js_forget": M.js_divergence(logits["forget_train"], retrain_logits["forget_train"]),
            "dist/js_test": M.js_divergence(test_u, test_r)}


def ulira_metrics(target_u: np.ndarray, target_r: np.ndarray, in_scores: np.ndarray, out_scores: np.ndarray,
                  fix_variance: bool = True) -> dict:
    """U-LiRA on D_f: per-example Gaussians over unlearned ("in") and retrained ("out") shadows' phi.

    With K >= 3 shadow pairs the targets are the shadows themselves, leave-one-out (each pair scored against
    Gaussians fit on the other K-1), so targets and reference models come from the same process (trained on
    a half of D_r), as Hayes et al. evaluate the algorithm. With fewer pairs the targets are this run's
    unlearned model (positive) and its retrain oracle (negative), which were trained on all of D_r: biased,
    and flagged by ``eval/ulira_targets`` = "run"."""
    k = len(in_scores)
    if k >= 3:
        pos, neg = [], []
        for j in range(k):
            rest = np.arange(k) != j
            llr = M.ulira_scores(np.stack([in_scores[j], out_scores[j]]), in_scores[rest], out_scores[rest],
                                 fix_variance)
            pos.append(llr[0])
            neg.append(llr[1])
        r = M.roc_summary(np.concatenate(pos), np.concatenate(neg))
        mode = "shadow_loo"
    else:
        r = M.ulira(np.stack([target_u, target_r]), in_scores, out_scores, np.array([[True], [False]]),
                    fix_variance=fix_variance)
        mode = "run"
    return {"mia/ulira_auc": r["auc"], "mia/ulira_bal_acc": r["bal_acc"],
            "mia/ulira_tpr_at_1fpr": r["tpr_at_1fpr"], "eval/ulira_targets": mode}


def fq_metrics(unlearned_phi: np.ndarray, retrain_phi: np.ndarray, acc_u: dict, acc_r: dict) -> dict:
    """Forgetting quality F over (N, n_f) phi matrices and the challenge's final score, whose RA/TA ratios use
    the mean retain-train / retain-test accuracies of the N unlearned and N retrained models."""
    f = M.forgetting_quality(unlearned_phi, retrain_phi)
    return {"fq/forgetting_quality": f,
            "fq/score": M.final_score(f, acc_u["ra"], acc_r["ra"], acc_u["ta"], acc_r["ta"])}


KLOM_PARTS = {"forget": ("forget_train",), "retain": ("retain_train",),
              "test": ("forget_test", "retain_test")}


def klom_metrics(margins_u: dict, margins_r: dict, per_example: dict | None = None) -> dict:
    """KLOM on D_f, D_r and the whole test split (mean and 95th percentile over examples) from the margins of
    the unlearned and the retrained ensembles, with the value two samples of one distribution reach at this
    N. ``per_example``, when given, receives each part's per-example KLOM (``klom_<part>``)."""
    out = {}
    for part, splits in KLOM_PARTS.items():
        u = np.concatenate([margins_u[k] for k in splits], axis=1)
        r = np.concatenate([margins_r[k] for k in splits], axis=1)
        k = M.klom_per_example(u, r)
        if per_example is not None:
            per_example[f"klom_{part}"] = k
        out.update({f"klom/{part}_{stat}": v for stat, v in M.klom_stats(k).items()})
    n = min(len(next(iter(margins_u.values()))), len(next(iter(margins_r.values()))))
    out.update({f"eval/klom_null_{stat}": v for stat, v in M.klom_null(n).items()})
    return out
