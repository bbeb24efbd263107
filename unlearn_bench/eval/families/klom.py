"""KLOM (Georgiev et al. 2024, "Attribute-to-Delete"): per example, the KL divergence between the binned
margins of the method applied to N originals and of the N retrains of forgetting quality, on D_f, D_r and
the test split (``eval.fq_runs`` = N, ``eval.klom``). Per-example values go to predictions.npz."""

from __future__ import annotations

from unlearn_bench.eval import suite
from unlearn_bench.eval.families import fq
from unlearn_bench.eval.family import METHOD_RUNS, ORACLE, ORIGINALS, RETRAINS, Family, MetricInfo

_KLOM = "Georgiev et al. 2024 (Attribute-to-Delete, KLOM)"
_KLOM_REF = ("eval/klom_null_* at the same N (two samples of one distribution): mean 9.2 at N = 3, "
             "5.6 at 10, 0.35 at 100; 0 only as N grows")
_PARTS = {"forget": "D_f", "retain": "D_r", "test": "the test split (both forget and retain classes)"}
INFO = {
    **{f"klom/{part}_mean": MetricInfo(
        f"KLOM on {where}, mean over examples: KL(unlearned || oracle) between an example's binned margins "
        "under the method applied to N originals (trained with N seeds) and under the N retrains "
        "(N = eval.fq_runs)", "lower", _KLOM_REF, _KLOM)
       for part, where in _PARTS.items()},
    **{f"klom/{part}_p95": MetricInfo(f"as klom/{part}_mean, 95th percentile over examples", "lower",
                                      "eval/klom_null_p95 at the same N", _KLOM) for part in _PARTS},
    **{f"eval/klom_null_{stat}": MetricInfo(
        f"KLOM {stat} of two independent samples of N standard-normal margins: what a perfect method "
        "scores at this N", "n/a", "n/a", _KLOM) for stat in ("mean", "p95")},
}


def _on(ev) -> bool:
    return bool(ev.fq_runs) and bool(ev.get("klom", True))


def needs(ev) -> dict[str, int]:
    n = int(ev.fq_runs)
    return {ORACLE: 1, RETRAINS: n - 1, ORIGINALS: n - 1, METHOD_RUNS: 2 * n}


def compute(state) -> dict:
    retrains = fq.ensembles(state)
    if retrains is None:
        return {}
    margins = state.references().klom_margins(int(state.ev.fq_runs), state.original)
    if margins is None:
        return {}
    return suite.klom_metrics(margins, retrains["margins_r"], per_example=state.arrays)


FAMILY = Family("klom", compute, INFO, needs=needs, enabled=_on)
