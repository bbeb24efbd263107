"""Relearn time and the anamnesis index of Chundawat et al. (TIFS'23, "Zero-shot machine unlearning"):
fine-tuning steps the unlearned model (and the oracle, when there is one) take to regain the original's
forget accuracy (``eval.relearn``)."""

from __future__ import annotations

from unlearn_bench import metrics
from unlearn_bench.eval import outputs
from unlearn_bench.eval.family import CACHED_ORACLE, Family, MetricInfo

_TIFS = "Chundawat et al. TIFS'23 (zero-shot unlearning)"
INFO = {
    "relearn/steps": MetricInfo("fine-tuning steps on D_f to regain 95% of the original forget accuracy",
                                "closer_to_retrain", "retrain's own steps", _TIFS),
    "relearn/ain": MetricInfo("Anamnesis index: relearn steps of theta_u / those of theta_r (<< 1: hidden; "
                              "empty when neither reached the target within the step cap)",
                              "closer_to_retrain", "1", _TIFS),
    "relearn/reached": MetricInfo("1 if relearning reached the target within eval.relearn_max_steps, else 0 "
                                  "(relearn/steps is then censored at the maximum)", "closer_to_retrain",
                                  "retrain's own", "harness bookkeeping"),
}


def compute(state) -> dict:
    ev = state.ev
    oracle = state.oracle()
    target = float(ev.relearn_target) * metrics.accuracy(state.logits_o["forget_test"],
                                                         state.labels["forget_test"])
    return outputs.relearn(state.ctx.subsets, state.unlearned, None if oracle is None else oracle[0], target,
                           int(ev.relearn_size), float(ev.relearn_lr), int(ev.relearn_max_steps), state.seed)


FAMILY = Family("relearn", compute, INFO, needs=lambda ev: {CACHED_ORACLE: 1},
                enabled=lambda ev: bool(ev.relearn))
