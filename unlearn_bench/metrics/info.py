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

METRIC_INFO: dict[str, MetricInfo] = {
    "acc/forget_train": MetricInfo("top-1 accuracy on D_f (LRA-NPP At; SalUn UA = 1 - this)", "lower",
                                   "0", f"{_LRA}; {_SPARSE_SALUN}"),
    "acc/forget_test": MetricInfo("top-1 accuracy on forget-class test samples", "lower", "0", _LRA),
    "acc/retain_train": MetricInfo("top-1 accuracy on D_r (LRA-NPP Ag; SalUn RA)", "higher",
                                   "retrain's RA (~ original)", f"{_LRA}; {_SPARSE_SALUN}"),
    "acc/retain_test": MetricInfo("top-1 accuracy on retain-class test samples (SalUn TA)", "higher",
                                  "retrain's TA (~ original)", _SPARSE_SALUN),
    "acc/test": MetricInfo("top-1 accuracy on the whole test split, forget class included",
                           "closer_to_retrain", "~ retain-class TA x (C-1)/C", "standard"),
    "mia/svc_confidence": MetricInfo(
        "MIA-Efficacy: share of D_f an RBF SVC on p_y (D_r vs retain-class D_t) calls non-member", "higher",
        "~ 1", _SPARSE_SALUN),
    "mia/entropy_member_rate": MetricInfo(
        "share of D_f a balanced logistic regression on softmax entropy (D_r vs D_t) calls member", "lower",
        "compare with Retrain (~ 0)", "Foster et al. AAAI'24 (SSD); Chundawat et al. AAAI'23 (Bad Teacher)"),
    "mia/loss_cv_acc": MetricInfo(
        "CV accuracy of logistic regression on loss, D_f vs forget-class test, balanced",
        "closer_to_retrain", "~ 0.5", "NeurIPS'23 challenge starting kit; Kurmanji et al. 2023 (SCRUB)"),
    "mia/fr": MetricInfo("1 - share of D_f outputs a LinearSVC fit on the original model calls member",
                         "higher", "~ 1", _LRA),
    "mia/fs": MetricInfo("|0.5 - A|, A = 10-split loss-attack CV accuracy on the forget class", "lower",
                         "~ 0", _LRA),
    "gap/avg_to_retrain": MetricInfo("Avg. Gap: mean |theta_u - theta_r| over UA, RA, TA, MIA-Efficacy",
                                     "lower", "0 (by definition)", "Fan et al. ICLR'24 (SalUn)"),
    "dist/js_forget": MetricInfo("mean Jensen-Shannon divergence (nats) to the retrained model on D_f",
                                 "lower", "0 (by definition)", "Chundawat et al. AAAI'23 (Bad Teacher)"),
    "dist/js_test": MetricInfo("mean Jensen-Shannon divergence (nats) to the retrained model on D_t",
                               "lower", "0 (by definition)", "Chundawat et al. AAAI'23 (Bad Teacher)"),
    "zrf": MetricInfo("ZRF: 1 - mean JS to a randomly initialised model on D_f (higher = more random)",
                      "closer_to_retrain", "compare with Retrain", "Chundawat et al. AAAI'23 (Bad Teacher)"),
    "relearn/steps": MetricInfo("fine-tuning steps on D_f to regain 95% of the original forget accuracy",
                                "closer_to_retrain", "retrain's own steps",
                                "Chundawat et al. TIFS'23 (zero-shot unlearning)"),
    "relearn/ain": MetricInfo("Anamnesis index: relearn steps of theta_u / those of theta_r (<< 1: hidden)",
                              "closer_to_retrain", "1", "Chundawat et al. TIFS'23 (zero-shot unlearning)"),
    "mia/ulira_auc": MetricInfo("U-LiRA per-example likelihood-ratio AUC, unlearned vs retrained targets",
                                "lower", "0.5", _ULIRA),
    "mia/ulira_bal_acc": MetricInfo("U-LiRA balanced accuracy at the best threshold", "lower", "0.5",
                                    _ULIRA),
    "mia/ulira_tpr_at_1fpr": MetricInfo("U-LiRA TPR at 1% FPR", "lower", "0.01", _ULIRA),
    "fq/score": MetricInfo("challenge final score F x (RA_u/RA_r) x (TA_u/TA_r)", "higher", "~ 1",
                           _CHALLENGE),
    "fq/forgetting_quality": MetricInfo("F: mean points of per-example eps over N unlearn vs N retrain runs",
                                        "higher", "~ 1", _CHALLENGE),
    "cost/unlearn_s": MetricInfo("wall-clock seconds of the unlearning step alone (GPU synchronised)",
                                 "lower", "retrain's time (the budget to beat)", "metrics.md (cost)"),
    "cost/peak_mem_mb": MetricInfo("peak memory in MiB (GPU max_memory_allocated, else CPU max RSS)",
                                   "lower", "retrain's peak", f"{_LRA} (G)"),
    "cost/eval_s": MetricInfo("wall-clock seconds spent evaluating metrics (not part of the method's cost)",
                              "lower", "n/a", "harness bookkeeping"),
}


def metric_info_markdown() -> str:
    """Markdown table of METRIC_INFO for the README."""
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    rows = ["| metric | description | better | retrain reference | source |", "|---|---|---|---|---|"]
    rows += [f"| `{k}` | " + " | ".join(esc(v) for v in info) + " |" for k, info in METRIC_INFO.items()]
    return "\n".join(rows) + "\n"
