"""Top-1 accuracy per split of the unlearned and the original model (the oracle's: ``oracle``)."""

from __future__ import annotations

from unlearn_bench.eval import suite
from unlearn_bench.eval.families._sources import LRA_NPP, SPARSE_SALUN
from unlearn_bench.eval.family import Family, MetricInfo

INFO = {
    "acc/forget_train": MetricInfo("top-1 accuracy on D_f (LRA-NPP At; SalUn UA = 1 - this)", "lower",
                                   "0", f"{LRA_NPP}; {SPARSE_SALUN}"),
    "acc/forget_test": MetricInfo("top-1 accuracy on forget-class test samples", "lower", "0", LRA_NPP),
    "acc/retain_train": MetricInfo("top-1 accuracy on D_r (LRA-NPP Ag; SalUn RA)", "higher",
                                   "retrain's RA (~ original)", f"{LRA_NPP}; {SPARSE_SALUN}"),
    "acc/retain_test": MetricInfo("top-1 accuracy on retain-class test samples (SalUn TA)", "higher",
                                  "retrain's TA (~ original)", SPARSE_SALUN),
    "acc/unseen": MetricInfo("top-1 accuracy on the unseen forget-class pool (held out of training)", "lower",
                             "0", "harness (zero-shot regime input)"),
    "acc/test": MetricInfo("top-1 accuracy on the whole test split, forget class included",
                           "closer_to_retrain", "~ retain-class TA x (C-1)/C", "standard"),
}


def compute(state) -> dict:
    return {**suite.accuracies(state.logits_u, state.labels),
            **suite.accuracies(state.logits_o, state.labels, prefix="original/")}


FAMILY = Family("accuracy", compute, INFO)
