"""The evaluation suite's computations (unlearn_bench/eval/suite.py) on hand-built arrays: oracle distances,
ROC, U-LiRA, forgetting quality, KLOM and the population attacks' draws."""

import numpy as np
import pytest

from unlearn_bench import metrics as M
from unlearn_bench.eval import suite as eval_suite
from unlearn_bench.metrics.info import METRIC_INFO

POPULATION = ("mia/svc_confidence", "mia/entropy_member_rate", "mia/loss_cv_acc", "mia/fs", "mia/fr")


def _labels(rng, sizes: dict) -> dict:
    """Class 0 on the forget splits, classes 1-3 on the retain splits."""
    return {s: (np.zeros(n, int) if s.startswith("forget") else rng.integers(1, 4, n))
            for s, n in sizes.items()}


def test_oracle_distances_of_a_model_to_itself_are_zero():
    rng = np.random.default_rng(0)
    splits = ("forget_train", "retain_train", "forget_test", "retain_test")
    labels = {s: rng.integers(0, 4, 30) for s in splits}
    logits = {s: rng.normal(size=(30, 4)) for s in labels}
    low, high = {"mia/svc_confidence": 0.3}, {"mia/svc_confidence": 0.9}
    d = eval_suite.oracle_distances(logits, logits, labels, low, low)
    zero = {"gap/avg_to_retrain": 0.0, "dist/js_forget": 0.0, "dist/js_test": 0.0}
    assert d == pytest.approx(zero, abs=1e-12)
    shifted = {s: v + 5 * np.eye(4)[labels[s]] for s, v in logits.items()}  # more confident on the true class
    d = eval_suite.oracle_distances(shifted, logits, labels, low, high)
    assert d["dist/js_forget"] > 0.05 and d["gap/avg_to_retrain"] > 0.6 / 4


def test_strongest_roc_picks_the_most_separating_attack():
    rng = np.random.default_rng(1)
    scores = {"weak": (rng.normal(size=200), rng.normal(size=200)),
              "strong": (rng.normal(3, 1, 200), rng.normal(size=200))}
    roc = eval_suite.strongest_roc(scores)
    assert set(roc.loc[roc["strongest"], "attack"]) == {"strong"}
    assert roc.loc[roc["attack"] == "strong", "auc"].iloc[0] > 0.95


def test_ulira_and_fq_on_built_scores():
    rng = np.random.default_rng(2)
    ins, outs = rng.normal(4, 1, (8, 50)), rng.normal(-4, 1, (8, 50))
    far = eval_suite.ulira_metrics(None, None, ins, outs)  # 8 pairs: leave-one-out over the shadows
    assert far["mia/ulira_auc"] > 0.99 and far["eval/ulira_targets"] == "shadow_loo"
    same = eval_suite.ulira_metrics(None, None, rng.normal(0, 1, (8, 50)), rng.normal(0, 1, (8, 50)))
    assert 0.4 < same["mia/ulira_auc"] < 0.6
    few = eval_suite.ulira_metrics(rng.normal(4, 1, 50), rng.normal(-4, 1, 50), ins[:2], outs[:2])
    assert few["mia/ulira_auc"] > 0.99 and few["eval/ulira_targets"] == "run"
    acc = {"ra": 0.9, "ta": 0.8}
    fq = eval_suite.fq_metrics(rng.normal(0, 1, (8, 40)), rng.normal(0, 1, (8, 40)), acc, acc)
    bad = eval_suite.fq_metrics(rng.normal(6, 1, (8, 40)), rng.normal(0, 1, (8, 40)), acc,
                                {"ra": 0.9, "ta": 1.6})
    # one distribution on both sides still scores < 1 at N = 8 (finite-N noise); separated sides score ~0
    assert fq["fq/forgetting_quality"] > 0.15 and bad["fq/forgetting_quality"] < 0.02
    assert bad["fq/score"] == pytest.approx(bad["fq/forgetting_quality"] * 0.5)


def test_klom_metrics_per_part():
    rng = np.random.default_rng(3)
    sizes = {"forget_train": 30, "retain_train": 50, "forget_test": 10, "retain_test": 20}
    r = {k: rng.normal(0, 1, (40, n)) for k, n in sizes.items()}
    u = {k: rng.normal(0, 1, (40, n)) for k, n in sizes.items()}
    u["forget_train"] = rng.normal(5, 1, (40, 30))  # only D_f is far from the oracle
    per = {}
    out = eval_suite.klom_metrics(u, r, per_example=per)
    assert set(out) <= set(METRIC_INFO)
    assert per["klom_forget"].shape == (30,) and per["klom_test"].shape == (30,)
    assert out["klom/forget_p95"] == pytest.approx(np.percentile(per["klom_forget"], 95))
    assert out["klom/forget_mean"] > 3 * out["klom/retain_mean"]
    assert out["klom/retain_mean"] < 2 * out["eval/klom_null_mean"]
    assert out["klom/test_p95"] >= out["klom/test_mean"]
    both = np.concatenate([u["forget_test"], u["retain_test"]], axis=1), np.concatenate(
        [r["forget_test"], r["retain_test"]], axis=1)
    assert out["klom/test_mean"] == pytest.approx(M.klom_per_example(*both).mean())


def test_entropy_attack_non_members_are_the_whole_test_split():
    rng = np.random.default_rng(4)
    sizes = {"forget_train": 40, "retain_train": 300, "forget_test": 60, "retain_test": 100}
    labels = _labels(rng, sizes)
    logits = {s: rng.normal(size=(n, 4)) * (4.0 if s == "retain_train" else 1.0) for s, n in sizes.items()}
    logits["forget_test"] = rng.normal(size=(60, 4)) * 0.05  # near-uniform: high entropy, unlike retain_test
    out = eval_suite.population_mias(logits, labels, logits, seed=0)
    whole = np.concatenate([logits["forget_test"], logits["retain_test"]])
    assert out["mia/entropy_member_rate"] == M.entropy_member_rate(logits["retain_train"], whole,
                                                                   logits["forget_train"])
    retain_only = M.entropy_member_rate(logits["retain_train"], logits["retain_test"], logits["forget_train"])
    assert out["mia/entropy_member_rate"] != retain_only


def _attack_inputs(seed=5):
    rng = np.random.default_rng(seed)
    sizes = {"forget_train": 60, "retain_train": 300, "forget_test": 50, "retain_test": 120}
    labels = _labels(rng, sizes)
    logits = {s: rng.normal(size=(n, 4)) * (3.0 if s.endswith("train") else 1.5) for s, n in sizes.items()}
    return logits, labels


def test_population_mias_are_means_over_seeded_draws():
    logits, labels = _attack_inputs()
    out = eval_suite.population_mias(logits, labels, logits, seed=2, draws=4)
    seeds = [M.draw_seed(2, d) for d in range(4)]
    ft, fte, rt, rte = "forget_train", "forget_test", "retain_train", "retain_test"
    svc = []
    for s in seeds:
        pick = np.sort(np.random.default_rng(s).choice(len(labels[rt]), size=len(labels[rte]), replace=False))
        svc.append(M.svc_confidence_mia(logits[rt][pick], labels[rt][pick], logits[rte], labels[rte],
                                        logits[ft], labels[ft], seed=s))
    p = {s: M.softmax(logits[s]) for s in (ft, fte)}
    fr = [M.lra_fr(p[ft], p[fte], p[ft], seed=s) for s in seeds]
    acc = [M.loss_cv_mia(M.cross_entropy_per_sample(logits[ft], labels[ft]),
                         M.cross_entropy_per_sample(logits[fte], labels[fte]), seed=s) for s in seeds]
    fs = np.abs(0.5 - np.array(acc))
    for key, v in (("mia/svc_confidence", svc), ("mia/fr", fr), ("mia/loss_cv_acc", acc), ("mia/fs", fs)):
        assert out[key] == pytest.approx(np.mean(v)), key
        assert out[f"{key}_std"] == pytest.approx(np.std(v, ddof=1)), key
    assert np.std(fr) > 0 and np.std(acc) > 0  # the draws differ
    assert out["mia/entropy_member_rate_std"] == 0.0
    assert set(out) == {*POPULATION, *(f"{k}_std" for k in POPULATION)}
    one = eval_suite.population_mias(logits, labels, logits, seed=2, draws=1)
    assert one["mia/fr"] == pytest.approx(fr[0]) and np.isnan(one["mia/fr_std"])  # one draw: no spread
    with pytest.raises(ValueError, match="mia_draws"):
        eval_suite.population_mias(logits, labels, logits, draws=0)


def test_two_attack_seeds_agree_within_the_spread():
    logits, labels = _attack_inputs(seed=9)
    a, b = (eval_suite.population_mias(logits, labels, logits, seed=s, draws=20) for s in (0, 1))
    assert a != b
    for k in POPULATION:
        assert abs(a[k] - b[k]) <= max(a[f"{k}_std"], b[f"{k}_std"]) + 1e-12, k


@pytest.mark.parametrize("n_forget_test, has_fs", [(5, False), (6, True)])
def test_fs_needs_six_forget_test_images_for_its_ten_percent_splits(n_forget_test, has_fs):
    rng = np.random.default_rng(0)
    sizes = {"forget_train": 40, "retain_train": 60, "forget_test": n_forget_test, "retain_test": 30}
    labels = _labels(rng, sizes)
    logits = {s: rng.normal(size=(n, 4)) for s, n in sizes.items()}
    out = eval_suite.population_mias(logits, labels, logits)
    assert ("mia/fs" in out) == has_fs and "mia/svc_confidence" in out
