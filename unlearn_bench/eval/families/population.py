"""Population membership-inference attacks on D_f (MIA-Efficacy of Unlearn-Sparse/SalUn, SSD's entropy
attack, the NeurIPS'23 kit's loss attack, LRA-NPP's Fr and Fs), each a mean over ``eval.mia_draws`` seeded
draws (``suite.population_mias``), on the unlearned and the original model (the oracle's: ``oracle``)."""

from __future__ import annotations

from unlearn_bench.eval import suite
from unlearn_bench.eval.families._sources import DRAWN, HARNESS, LRA_NPP, SPARSE_SALUN
from unlearn_bench.eval.family import Family, MetricInfo

# Bump when population_mias, or a metrics.* function it calls, changes what it returns: results cached for
# the original and the oracle (ModelStore.cached_metrics) are keyed by it.
# 2: Fr with a linear-kernel SVC, Fs with 10% held out per split; 3: the entropy attack's non-members are
# the whole test split, as SSD runs it; 4: mean and spread over seeded draws, the entropy attack on all of
# D_r and D_t, the loss attack's regressions solved to convergence, the SVC on p_y merged in 2e-3 bins
VERSION = 4

INFO = {
    "mia/svc_confidence": MetricInfo(
        f"MIA-Efficacy: share of D_f an RBF SVC on p_y (a random |D_t| of D_r vs retain-class D_t) calls "
        f"non-member{DRAWN}", "higher", "~ 1", SPARSE_SALUN),
    "mia/entropy_member_rate": MetricInfo(
        "share of D_f a balanced logistic regression on softmax entropy (all of D_r vs the whole test split, "
        "forget class included, as SSD) calls member; no sample, so `_std` = 0", "closer_to_retrain",
        "compare with Retrain (0.31 on the Fashion-MNIST default, 0.02 on digits/MLP; a collapsed model "
        "scores 0)", "Foster et al. AAAI'24 (SSD); Chundawat et al. AAAI'23 (Bad Teacher)"),
    "mia/loss_cv_acc": MetricInfo(
        f"10-split CV accuracy of logistic regression on loss, D_f vs forget-class test, balanced{DRAWN}",
        "closer_to_retrain", "~ 0.5", "NeurIPS'23 challenge starting kit; Kurmanji et al. 2023 (SCRUB)"),
    "mia/fr": MetricInfo(f"1 - share of D_f outputs a linear SVM fit on the original model calls member"
                         f"{DRAWN}", "closer_to_retrain",
                         "compare with Retrain (0.91 on the Fashion-MNIST default; 0.09 on digits/MLP, where "
                         "the SVM extrapolates arbitrarily to its outputs; a collapsed model can score 1)",
                         LRA_NPP),
    "mia/fs": MetricInfo(f"|0.5 - A| per draw, A = 10-split loss-attack CV accuracy on the forget class"
                         f"{DRAWN}", "closer_to_retrain",
                         "~ 0.04 (a chance-level attack's |0.5 - A| on a few hundred images; a collapsed "
                         "model scores 0)", LRA_NPP),
    "eval/mia_draws": MetricInfo("R, seeded draws of each population attack (`eval.mia_draws`); "
                                 "`<key>_std` is the spread over them", "n/a", "n/a", HARNESS),
}


def tag(state) -> str:
    """The name the original's and the oracle's attack results are cached under (Fr reads the original's
    logits, hence its hash)."""
    return f"mia-v{VERSION}-seed{state.seed}-draws{state.draws}-o{state.meta_o['sha256'][:12]}"


def mias(state, model: str) -> dict:
    """The attacks on ``model``: "unlearned", "original" or "retrain" (the oracle, which must be there)."""
    def attack(logits):
        return lambda: suite.population_mias(logits, state.labels, state.logits_o, state.seed, state.draws)

    def run():
        if model == "original":
            return state.store.cached_metrics(state.meta_o, tag(state), attack(state.logits_o))
        if model == "retrain":
            _, meta, logits = state.oracle()
            return state.store.cached_metrics(meta, tag(state), attack(logits))
        if state.unchanged:  # e.g. `none`: the attacks are the original's
            return dict(mias(state, "original"))
        return attack(state.logits_u)()
    return state.memo(f"population/{model}", run)


def compute(state) -> dict:
    original = mias(state, "original")
    out = dict(mias(state, "unlearned"))
    out.update({f"original/{k}": v for k, v in original.items()})
    out["eval/mia_draws"] = state.draws
    return out


FAMILY = Family("population", compute, INFO, version=VERSION)
