"""Distances to the retrain oracle (SalUn's Avg. Gap, Bad Teacher's JS divergences), and the oracle's own
accuracies, attacks and ZRF (``retrain/<key>``), the row every table compares with. The oracle is
trained for it under ``eval.retrain=true``; otherwise these keys appear when it is already cached."""

from __future__ import annotations

from unlearn_bench import metrics
from unlearn_bench.eval import suite
from unlearn_bench.eval.families import population, zrf
from unlearn_bench.eval.families._sources import BAD_TEACHER, HARNESS
from unlearn_bench.eval.family import CACHED_ORACLE, ORACLE, RANDOM_MODEL, Family, MetricInfo

INFO = {
    "gap/avg_to_retrain": MetricInfo("Avg. Gap: mean |theta_u - theta_r| over UA, RA, TA, MIA-Efficacy, per "
                                     "seed against that seed's oracle (a mean over seeds is at least the gap "
                                     "between seed-averaged metrics that SalUn's tables report)",
                                     "lower", "0 (by definition)", "Fan et al. ICLR'24 (SalUn)"),
    "dist/js_forget": MetricInfo("mean Jensen-Shannon divergence (nats) to the retrained model on D_f",
                                 "lower", "0 (by definition)", BAD_TEACHER),
    "dist/js_test": MetricInfo("mean Jensen-Shannon divergence (nats) to the retrained model on the whole "
                               "test split (forget class included)",
                               "lower", "0 (by definition)", BAD_TEACHER),
    "eval/retrain_cache_hit": MetricInfo("whether the evaluation found the retrain oracle in the cache",
                                         "n/a", "n/a", HARNESS),
    "eval/retrain_train_s": MetricInfo("seconds the oracle took to train when it was trained (cached value "
                                       "on a hit)", "n/a", "n/a", HARNESS),
}


def needs(ev) -> dict[str, int]:
    return {ORACLE if ev.retrain else CACHED_ORACLE: 1, RANDOM_MODEL: 1}


def compute(state) -> dict:
    oracle = state.oracle()
    if oracle is None:
        return {}
    _, meta, logits_r = oracle
    out = {"eval/retrain_cache_hit": meta["cache_hit"], "eval/retrain_train_s": meta.get("train_s")}
    out.update(suite.accuracies(logits_r, state.labels, prefix="retrain/"))
    mia_r = population.mias(state, "retrain")
    out.update({f"retrain/{k}": v for k, v in mia_r.items()})
    out["retrain/zrf"] = metrics.zrf(logits_r["forget_train"], zrf.random_forget_logits(state))
    mia_u = population.mias(state, "unlearned")  # Avg. Gap reads both models' MIA-Efficacy
    out.update(suite.oracle_distances(state.logits_u, logits_r, state.labels, mia_u, mia_r))
    return out


FAMILY = Family("oracle", compute, INFO, needs=needs)
