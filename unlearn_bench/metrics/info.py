"""What every reported metric means: description, direction, retrain reference, source.

Direction is one of "higher", "lower", "closer_to_retrain". References are for class forgetting (the harness'
setting); "compare with Retrain" means the oracle's own value is the target and has no fixed number.
"""
from __future__ import annotations

from typing import NamedTuple


class MetricInfo(NamedTuple):
    description: str
    direction: str
    retrain_reference: str
    source: str


_SPARSE_SALUN = "Jia et al. NeurIPS'23 (Unlearn-Sparse); Fan et al. ICLR'24 (SalUn)"
_LRA = "Chang et al. arXiv 2410.23693 (LRA-NPP)"
_ULIRA = "Hayes et al. 2024 (U-LiRA); Carlini et al. S&P'22 (LiRA)"
_CHALLENGE = "Triantafillou et al. 2024 (NeurIPS'23 Machine Unlearning Challenge)"
_KLOM = "Georgiev et al. 2024 (Attribute-to-Delete, KLOM)"
_KLOM_REF = ("eval/klom_null_* at the same N (two samples of one distribution): mean 9.2 at N = 3, 5.6 at 10, "
             "0.35 at 100; 0 only as N grows")
_DRAWN = "; mean over `eval.mia_draws` seeded draws, spread in `<key>_std`"
_KLOM_PARTS = {"forget": "D_f", "retain": "D_r", "test": "the test split (both forget and retain classes)"}

METRIC_INFO: dict[str, MetricInfo] = {
    "acc/forget_train": MetricInfo("top-1 accuracy on D_f (LRA-NPP At; SalUn UA = 1 - this)", "lower",
                                   "0", f"{_LRA}; {_SPARSE_SALUN}"),
    "acc/forget_test": MetricInfo("top-1 accuracy on forget-class test samples", "lower", "0", _LRA),
    "acc/retain_train": MetricInfo("top-1 accuracy on D_r (LRA-NPP Ag; SalUn RA)", "higher",
                                   "retrain's RA (~ original)", f"{_LRA}; {_SPARSE_SALUN}"),
    "acc/retain_test": MetricInfo("top-1 accuracy on retain-class test samples (SalUn TA)", "higher",
                                  "retrain's TA (~ original)", _SPARSE_SALUN),
    "acc/unseen": MetricInfo("top-1 accuracy on the unseen forget-class pool (held out of training)", "lower",
                             "0", "harness (zero-shot regime input)"),
    "acc/test": MetricInfo("top-1 accuracy on the whole test split, forget class included",
                           "closer_to_retrain", "~ retain-class TA x (C-1)/C", "standard"),
    "mia/svc_confidence": MetricInfo(
        f"MIA-Efficacy: share of D_f an RBF SVC on p_y (a random |D_t| of D_r vs retain-class D_t) calls "
        f"non-member{_DRAWN}", "higher", "~ 1", _SPARSE_SALUN),
    "mia/entropy_member_rate": MetricInfo(
        "share of D_f a balanced logistic regression on softmax entropy (all of D_r vs the whole test split, "
        "forget class included, as SSD) calls member; no sample, so `_std` = 0", "closer_to_retrain",
        "compare with Retrain (0.31 on the Fashion-MNIST default, 0.02 on digits/MLP; a collapsed model "
        "scores 0)", "Foster et al. AAAI'24 (SSD); Chundawat et al. AAAI'23 (Bad Teacher)"),
    "mia/loss_cv_acc": MetricInfo(
        f"10-split CV accuracy of logistic regression on loss, D_f vs forget-class test, balanced{_DRAWN}",
        "closer_to_retrain", "~ 0.5", "NeurIPS'23 challenge starting kit; Kurmanji et al. 2023 (SCRUB)"),
    "mia/fr": MetricInfo(f"1 - share of D_f outputs a linear SVM fit on the original model calls member"
                         f"{_DRAWN}", "closer_to_retrain",
                         "compare with Retrain (0.91 on the Fashion-MNIST default; 0.09 on digits/MLP, where "
                         "the SVM extrapolates arbitrarily to its outputs; a collapsed model can score 1)", _LRA),
    "mia/fs": MetricInfo(f"|0.5 - A| per draw, A = 10-split loss-attack CV accuracy on the forget class"
                         f"{_DRAWN}", "closer_to_retrain",
                         "~ 0.04 (a chance-level attack's |0.5 - A| on a few hundred images; a collapsed "
                         "model scores 0)", _LRA),
    "gap/avg_to_retrain": MetricInfo("Avg. Gap: mean |theta_u - theta_r| over UA, RA, TA, MIA-Efficacy, per "
                                     "seed against that seed's oracle (a mean over seeds is at least the gap "
                                     "between seed-averaged metrics that SalUn's tables report)",
                                     "lower", "0 (by definition)", "Fan et al. ICLR'24 (SalUn)"),
    "dist/js_forget": MetricInfo("mean Jensen-Shannon divergence (nats) to the retrained model on D_f",
                                 "lower", "0 (by definition)", "Chundawat et al. AAAI'23 (Bad Teacher)"),
    "dist/js_test": MetricInfo("mean Jensen-Shannon divergence (nats) to the retrained model on the whole "
                               "test split (forget class included)",
                               "lower", "0 (by definition)", "Chundawat et al. AAAI'23 (Bad Teacher)"),
    "zrf": MetricInfo("ZRF: 1 - mean JS to a randomly initialised model on D_f (higher = more random)",
                      "closer_to_retrain", "compare with Retrain", "Chundawat et al. AAAI'23 (Bad Teacher)"),
    "relearn/steps": MetricInfo("fine-tuning steps on D_f to regain 95% of the original forget accuracy",
                                "closer_to_retrain", "retrain's own steps",
                                "Chundawat et al. TIFS'23 (zero-shot unlearning)"),
    "relearn/ain": MetricInfo("Anamnesis index: relearn steps of theta_u / those of theta_r (<< 1: hidden; "
                              "empty when neither reached the target within the step cap)",
                              "closer_to_retrain", "1", "Chundawat et al. TIFS'23 (zero-shot unlearning)"),
    "relearn/reached": MetricInfo("1 if relearning reached the target within eval.relearn_max_steps, else 0 "
                                  "(relearn/steps is then censored at the maximum)", "closer_to_retrain",
                                  "retrain's own", "harness bookkeeping"),
    "mia/ulira_auc": MetricInfo("U-LiRA per-example likelihood-ratio AUC, unlearned vs retrained targets "
                                "(below 0.5 also tells them apart)", "closer_to_retrain", "0.5", _ULIRA),
    "mia/ulira_bal_acc": MetricInfo("U-LiRA balanced accuracy at the best threshold", "closer_to_retrain", "0.5",
                                    _ULIRA),
    "mia/ulira_tpr_at_1fpr": MetricInfo("U-LiRA TPR at 1% FPR", "lower", "0.01", _ULIRA),
    "fq/score": MetricInfo("challenge final score F x (RA_u/RA_r) x (TA_u/TA_r)", "higher",
                           "retrain's own F (see fq/forgetting_quality)", _CHALLENGE),
    "fq/forgetting_quality": MetricInfo("F: mean points of per-example eps over N unlearn vs N retrain runs",
                                        "higher", "retrain's own F, well below 1: two samples of one "
                                        "distribution score about 0.2-0.4 at N = 3-512", _CHALLENGE),
    **{f"klom/{part}_mean": MetricInfo(
        f"KLOM on {where}, mean over examples: KL(unlearned || oracle) between an example's binned margins "
        "under the method applied to N originals (trained with N seeds) and under the N retrains "
        "(N = eval.fq_runs)", "lower", _KLOM_REF, _KLOM)
       for part, where in _KLOM_PARTS.items()},
    **{f"klom/{part}_p95": MetricInfo(f"as klom/{part}_mean, 95th percentile over examples", "lower",
                                      "eval/klom_null_p95 at the same N", _KLOM) for part in _KLOM_PARTS},
    "cost/unlearn_s": MetricInfo("wall-clock seconds of the unlearning step alone (GPU synchronised)",
                                 "lower", "retrain's time (the budget to beat)", "metrics.md (cost)"),
    "cost/peak_mem_mb": MetricInfo("peak memory in MiB of the unlearning step (GPU max_memory_allocated; CPU: peak resident memory added during the step, sampled every 5 ms)",
                                   "lower", "retrain's peak", f"{_LRA} (G)"),
    "cost/eval_s": MetricInfo("wall-clock seconds of the whole evaluation: output collection, attacks, oracle "
                              "(trained here if eval.retrain and not cached), relearn, reference models; not "
                              "part of the method's cost", "lower", "n/a", "harness bookkeeping"),
    "eval/retrain_cache_hit": MetricInfo("whether the evaluation found the retrain oracle in the cache",
                                         "n/a", "n/a", "harness bookkeeping"),
    "eval/retrain_train_s": MetricInfo("seconds the oracle took to train when it was trained (cached value on a "
                                       "hit)", "n/a", "n/a", "harness bookkeeping"),
    "eval/ulira_targets": MetricInfo("U-LiRA targets: shadow_loo (each shadow pair held out in turn; K >= 3) or "
                                     "run (this run's models, trained on all of D_r: biased)", "n/a", "n/a", _ULIRA),
    "eval/shadows": MetricInfo("K, U-LiRA shadow pairs (eval.shadows)", "n/a", "n/a", _ULIRA),
    **{f"eval/klom_null_{stat}": MetricInfo(
        f"KLOM {stat} of two independent samples of N standard-normal margins: what a perfect method scores at "
        "this N", "n/a", "n/a", _KLOM) for stat in ("mean", "p95")},
    "eval/mia_draws": MetricInfo("R, seeded draws of each population attack (`eval.mia_draws`); "
                                 "`<key>_std` is the spread over them", "n/a", "n/a", "harness bookkeeping"),
    "eval/fq_runs": MetricInfo("N, unlearning runs and retrains each for forgetting quality (eval.fq_runs)",
                               "n/a", "n/a", _CHALLENGE),
}

# The same metric measured on a reference model instead of the unlearned one: the rows tables compare with.
MODEL_PREFIXES = {"original/": "the original model", "retrain/": "the retrained oracle"}


STD_SUFFIX = "_std"


def metric_info(key: str) -> MetricInfo:
    """Info for a metrics.json key, including ``original/<key>``, ``retrain/<key>`` and ``<key>_std`` (the
    spread over attack draws). KeyError if unknown."""
    if key in METRIC_INFO:
        return METRIC_INFO[key]
    if key.endswith(STD_SUFFIX):
        info = metric_info(key[:-len(STD_SUFFIX)])
        return MetricInfo(f"standard deviation (ddof = 1) over eval.mia_draws attack draws of: {info.description}",
                          "n/a", "n/a", info.source)
    for prefix, who in MODEL_PREFIXES.items():
        if key.startswith(prefix) and key[len(prefix):] in METRIC_INFO:
            info = METRIC_INFO[key[len(prefix):]]
            return info._replace(description=f"{info.description} -- of {who}")
    raise KeyError(f"{key} is not described in METRIC_INFO")


NOT_COMPUTED = (
    "Not computed: RMIA (Zarifzadeh et al. 2024). Its offline form calibrates a target's confidence on x by "
    "reference models that never trained on x; in class forgetting those models never saw the class, so their "
    "confidence on every forget example is about 0, the calibration is a constant, and the attack ranks D_f "
    "by the target's own confidence, which `mia/loss_cv_acc` already does. Its online form needs reference "
    "models trained on D_f, which is U-LiRA's \"in\" side (`mia/ulira_*`).\n")


def metrics_doc() -> str:
    """The content of docs/metrics.md (regenerate: ``python -m unlearn_bench.metrics.info > docs/metrics.md``)."""
    prefixes = ", ".join(f"`{p}<key>` ({w})" for p, w in MODEL_PREFIXES.items())
    return ("# Metrics\n\nEvery key a run writes to `metrics.json`, its direction and the value the retrain "
            "oracle takes (class forgetting). Generated from `unlearn_bench.metrics.info.METRIC_INFO`; "
            "definitions in `unlearn_bench/metrics/` and `unlearn_bench/eval/suite.py`.\n\n"
            f"The same key under {prefixes} is that metric measured on the reference model, so tables show "
            "the direction. A key whose value is a mean over attack draws has its spread (standard deviation "
            f"over the `eval/mia_draws` draws, ddof = 1) under `<key>{STD_SUFFIX}`.\n\n"
            "Directions are checked against measurement (tests/test_metric_directions.py): where the oracle "
            "is not at an extreme of a metric's range, the direction is `closer_to_retrain`, and no "
            "`higher`/`lower` metric ranks a collapsed model (retain accuracy at chance) above the oracle.\n\n"
            + metric_info_markdown() + "\n" + NOT_COMPUTED)


def metric_info_markdown() -> str:
    """Markdown table of METRIC_INFO for the README."""
    rows = ["| metric | description | better | retrain reference | source |", "|---|---|---|---|---|"]
    for key, info in METRIC_INFO.items():
        cells = [f"`{key}`"] + [str(v).replace("|", "\\|") for v in info]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(metrics_doc(), end="")
