"""Forgetting quality of the NeurIPS'23 Machine Unlearning Challenge (Triantafillou et al. 2024): the
method run N times from the one original vs N retrains, per-example epsilons on D_f, and the challenge's
final score; ``eval.fq_runs`` = N (``ReferenceModels.fq_ensembles``)."""

from __future__ import annotations

from unlearn_bench.eval import suite
from unlearn_bench.eval.family import METHOD_RUNS, ORACLE, RETRAINS, Family, MetricInfo

CHALLENGE = "Triantafillou et al. 2024 (NeurIPS'23 Machine Unlearning Challenge)"
INFO = {
    "fq/score": MetricInfo("challenge final score F x (RA_u/RA_r) x (TA_u/TA_r)", "higher",
                           "retrain's own F (see fq/forgetting_quality)", CHALLENGE),
    "fq/forgetting_quality": MetricInfo("F: mean points of per-example eps over N unlearn vs N retrain runs",
                                        "higher", "retrain's own F, well below 1: two samples of one "
                                        "distribution score about 0.2-0.4 at N = 3-512", CHALLENGE),
    "eval/fq_runs": MetricInfo("N, unlearning runs and retrains each for forgetting quality (eval.fq_runs)",
                               "n/a", "n/a", CHALLENGE),
}


def needs(ev) -> dict[str, int]:
    n = int(ev.fq_runs)
    return {ORACLE: 1, RETRAINS: n - 1, METHOD_RUNS: n}


def ensembles(state) -> dict | None:
    """The N unlearning runs and N retrains (``ReferenceModels.fq_ensembles``); None if a run diverged."""
    n = int(state.ev.fq_runs)
    return state.memo("fq/ensembles",
                      lambda: state.references().fq_ensembles(n, state.original, state.oracle()[0]))


def compute(state) -> dict:
    out = {"eval/fq_runs": int(state.ev.fq_runs)}
    fq = ensembles(state)
    if fq is not None:
        out.update(suite.fq_metrics(fq["u"], fq["r"], fq["acc_u"], fq["acc_r"]))
    return out


FAMILY = Family("fq", compute, INFO, needs=needs, enabled=lambda ev: int(ev.fq_runs) > 0)
