"""U-LiRA (Hayes et al. 2024, "Inexact unlearning needs more careful evaluations"): per-example likelihood
ratios of the forget examples' outputs under K shadow originals unlearned by the method ("in") and K shadows
retrained without D_f ("out"); ``eval.shadows`` = K (``ReferenceModels.shadows``)."""

from __future__ import annotations

import numpy as np

from unlearn_bench import metrics
from unlearn_bench.eval import suite
from unlearn_bench.eval.family import METHOD_RUNS, ORACLE, SHADOW_PAIRS, Family, MetricInfo

_ULIRA = "Hayes et al. 2024 (U-LiRA); Carlini et al. S&P'22 (LiRA)"
INFO = {
    "mia/ulira_auc": MetricInfo("U-LiRA per-example likelihood-ratio AUC, unlearned vs retrained targets "
                                "(below 0.5 also tells them apart)", "closer_to_retrain", "0.5", _ULIRA),
    "mia/ulira_bal_acc": MetricInfo("U-LiRA balanced accuracy at the best threshold", "closer_to_retrain",
                                    "0.5", _ULIRA),
    "mia/ulira_tpr_at_1fpr": MetricInfo("U-LiRA TPR at 1% FPR", "lower", "0.01", _ULIRA),
    "eval/ulira_targets": MetricInfo("U-LiRA targets: shadow_loo (each shadow pair held out in turn; K >= 3) "
                                     "or run (this run's models, trained on all of D_r: biased)", "n/a",
                                     "n/a", _ULIRA),
    "eval/shadows": MetricInfo("K, U-LiRA shadow pairs (eval.shadows)", "n/a", "n/a", _ULIRA),
}


def needs(ev) -> dict[str, int]:
    k = int(ev.shadows)
    return {ORACLE: 1, SHADOW_PAIRS: k, METHOD_RUNS: k}


def compute(state) -> dict:
    k, fix = int(state.ev.shadows), bool(state.ev.ulira_fix_variance)
    retrain = state.oracle()[0]
    out = {"eval/shadows": k}
    refs = state.references()
    pair = refs.shadows(k, state.seed)
    if pair is not None:
        targets = (refs.phi(state.unlearned), refs.phi(retrain))
        out.update(suite.ulira_metrics(*targets, *pair, fix_variance=fix))
        llr = metrics.ulira_scores(np.stack(targets), *pair, fix_variance=fix)
        state.scores["ulira"] = (llr[0], llr[1])  # unlearned target (member) vs retrain target, for roc.csv
    return out


FAMILY = Family("ulira", compute, INFO, needs=needs, enabled=lambda ev: int(ev.shadows) > 0)
