"""per_class.csv: per-class top-1 accuracy on the train and the test split of the original, the unlearned
model and the oracle (when there is one). No metrics.json key."""

from __future__ import annotations

from unlearn_bench.eval import suite
from unlearn_bench.eval.family import CACHED_ORACLE, Family


def compute(state) -> dict:
    models = {"original": state.logits_o, "unlearned": state.logits_u}
    if state.oracle() is not None:
        models["retrain"] = state.oracle_logits()
    table = suite.per_class(models, state.labels, state.ctx.data.num_classes)
    table.to_csv(state.run_dir / "per_class.csv", index=False)
    state.tables["per_class"] = table
    return {}


FAMILY = Family("per_class", compute, needs=lambda ev: {CACHED_ORACLE: 1})
