"""ZRF of Bad Teacher (Chundawat et al. AAAI'23): how close the unlearned model's outputs on D_f are to a
randomly initialised model's (the oracle's: ``oracle``)."""

from __future__ import annotations

from unlearn_bench import metrics
from unlearn_bench.eval.families._sources import BAD_TEACHER
from unlearn_bench.eval.family import RANDOM_MODEL, Family, MetricInfo
from unlearn_bench.eval.outputs import predict_logits
from unlearn_bench.run.identity import RANDOM_SEED_OFFSET

INFO = {
    "zrf": MetricInfo("ZRF: 1 - mean JS to a randomly initialised model on D_f (higher = more random)",
                      "closer_to_retrain", "compare with Retrain", BAD_TEACHER),
}


def random_forget_logits(state):
    """A randomly initialised model's logits on D_f (its seed: the run's, offset)."""
    def run():
        ctx = state.ctx
        model = ctx.build_model(int(ctx.cfg.seed) + RANDOM_SEED_OFFSET).to(ctx.device)
        return predict_logits(model, ctx.subsets["forget_train"], state.ev.batch_size)
    return state.memo("zrf/random_forget", run)


def compute(state) -> dict:
    return {"zrf": metrics.zrf(state.logits_u["forget_train"], random_forget_logits(state))}


FAMILY = Family("zrf", compute, INFO, needs=lambda ev: {RANDOM_MODEL: 1})
