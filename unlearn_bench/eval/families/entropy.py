"""Predictive entropy on the forget class: the mean softmax entropy (nats) of the outputs on D_f and on
the forget-class test images, of the unlearned model, the original (``original/``) and the oracle
(``retrain/``, when it is cached or trained). A model that forgot the class as the oracle never learned
it is about as uncertain there as the oracle; a near-zero value beside a high oracle value is the
over-confidence the entropy attack of SSD (Foster et al. AAAI'24, ``mia/entropy_member_rate``) thresholds.

Not in a shipped level: list it with ``eval.families=[accuracy,population,zrf,oracle,relearn,ulira,fq,
klom,per_class,roc,entropy]`` (a different evaluation, hence a different ``config_hash``)."""

from __future__ import annotations

from unlearn_bench import metrics
from unlearn_bench.eval.family import CACHED_ORACLE, Family, MetricInfo

SPLITS = ("forget_train", "forget_test")
INFO = {f"entropy/{split}": MetricInfo(
    f"mean softmax entropy (nats) of the outputs on {where}", "closer_to_retrain", "compare with Retrain",
    "harness; the feature of SSD's entropy attack (Foster et al. AAAI'24)")
    for split, where in (("forget_train", "D_f"), ("forget_test", "forget-class test samples"))}


def _entropies(logits: dict, prefix: str = "") -> dict:
    return {f"{prefix}entropy/{s}": float(metrics.entropy(metrics.softmax(logits[s])).mean())
            for s in SPLITS if len(logits[s])}


def compute(state) -> dict:
    out = {**_entropies(state.logits_u), **_entropies(state.logits_o, "original/")}
    if state.oracle() is not None:
        out.update(_entropies(state.oracle_logits(), "retrain/"))
    return out


FAMILY = Family("entropy", compute, INFO, needs=lambda ev: {CACHED_ORACLE: 1})
