"""roc.csv: ROC points of the threshold attacks on D_f vs forget-class test (loss, confidence, entropy)
and of the attack scores families listed before it left (U-LiRA's likelihood ratios), the strongest
marked. No metrics.json key."""

from __future__ import annotations

from unlearn_bench.eval import suite
from unlearn_bench.eval.family import Family


def compute(state) -> dict:
    scores = suite.attack_rocs(state.logits_u, state.labels)
    scores.update(state.scores)
    table = suite.strongest_roc(scores)
    table.to_csv(state.run_dir / "roc.csv", index=False)
    state.tables["roc"] = table
    return {}


FAMILY = Family("roc", compute)
