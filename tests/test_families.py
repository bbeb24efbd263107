"""Metric families: conf/eval lists them, evaluate() runs the listed ones, what they need decides what is
trained, a list other than the shipped one is another run identity, and METRIC_INFO is their union."""

import json
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy.special import softmax as sp_softmax
from scipy.stats import entropy as sp_entropy

from unlearn_bench.config import compose
from unlearn_bench.errors import ConfigError
from unlearn_bench.eval import family
from unlearn_bench.eval.families import entropy, oracle, population, ulira, zrf
from unlearn_bench.eval.state import EvalState
from unlearn_bench.metrics.info import METRIC_INFO, collect, metric_info_markdown, metrics_doc
from unlearn_bench.run import pipeline
from unlearn_bench.run.identity import LEGACY_FAMILIES, config_hash, setup_hash

ANSWER = '''
from unlearn_bench.eval.family import Family, MetricInfo

def compute(state):
    return {"answer/forget_size": len(state.labels["forget_train"])}

FAMILY = Family("answer", compute, {"answer/forget_size": MetricInfo("|D_f|", "n/a", "n/a", "test")})
'''


@pytest.fixture
def answer_module(tmp_path, monkeypatch):
    """A family of a package of the user's own, importable as ``userfams.answer``."""
    (tmp_path / "userfams").mkdir()
    (tmp_path / "userfams" / "__init__.py").write_text("")
    (tmp_path / "userfams" / "answer.py").write_text(textwrap.dedent(ANSWER))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "userfams.answer"
    for name in [m for m in sys.modules if m.split(".")[0] == "userfams"]:
        del sys.modules[name]


def _run(digits_cfg, root, name, families):
    listed = ",".join(families)
    cfg = digits_cfg("method=none", "train.epochs=3", "forget.classes=[2]", "eval.mia_draws=2",
                     f"eval.families=[{listed}]")
    m = pipeline.run(cfg, root / name)
    assert json.loads((root / name / "metrics.json").read_text()) == m
    return m, root / name


def test_a_listed_family_runs_and_an_unlisted_one_does_not(digits_cfg, tmp_path, answer_module):
    full, full_dir = _run(digits_cfg, tmp_path, "with", ["accuracy", "population", "zrf", "per_class",
                                                        answer_module])
    assert full["answer/forget_size"] > 0 and "zrf" in full and "mia/fr" in full
    assert (full_dir / "per_class.csv").exists() and not (full_dir / "roc.csv").exists()
    less, less_dir = _run(digits_cfg, tmp_path, "without", ["accuracy", "zrf", "roc"])
    gone = set(full) - set(less)
    assert "answer/forget_size" in gone and "original/mia/fr" in gone and "eval/mia_draws" in gone
    assert all(k.startswith(("mia/", "original/mia/", "answer/", "eval/mia_draws", "cost/")) for k in gone)
    assert less["zrf"] == full["zrf"] and less["acc/forget_train"] == full["acc/forget_train"]
    assert (less_dir / "roc.csv").exists() and not (less_dir / "per_class.csv").exists()
    assert less["config_hash"] != full["config_hash"]


def test_the_shipped_list_hashes_as_no_list_and_another_list_does_not(digits_cfg):
    from unlearn_bench.config import compose
    for level in ("fast", "full"):
        cfg = compose(["data=digits", f"eval={level}"])
        assert list(cfg.eval.families) == list(LEGACY_FAMILIES)
        hashes = config_hash(cfg), setup_hash(cfg)
        bare = compose(["data=digits", f"eval={level}", "~eval.families"])
        assert (config_hash(bare), setup_hash(bare)) == hashes  # runs finished before the list stay found
        for other in ("[accuracy,population]", f"[{','.join(LEGACY_FAMILIES)},entropy]"):
            custom = compose(["data=digits", f"eval={level}", f"eval.families={other}"])
            assert config_hash(custom) != hashes[0] and setup_hash(custom) != hashes[1], other


def test_a_config_without_a_list_runs_what_every_level_ran():
    assert family.listed(OmegaConf.create({"level": "fast"})) == list(LEGACY_FAMILIES)
    assert family.listed(OmegaConf.create({"families": ["zrf"]})) == ["zrf"]


def test_an_unknown_family_is_a_config_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="no metric family 'acuracy'"):
        family.resolve("acuracy")
    (tmp_path / "nofamily").mkdir()
    (tmp_path / "nofamily" / "__init__.py").write_text("")
    (tmp_path / "nofamily" / "x.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="has no FAMILY"):
        family.resolve("nofamily.x")
    family.check({"families": ["accuracy", "zrf"]})  # what validation runs before anything trains
    for bad, message in (("zrf", "not a list"), (["zrf", "acuracy"], "no metric family 'acuracy'")):
        with pytest.raises(ConfigError, match=message):
            family.check({"families": bad})


def _ev(**kw):
    base = {"retrain": False, "relearn": False, "shadows": 0, "fq_runs": 0, "klom": True}
    return OmegaConf.create({**base, **kw})


def test_what_the_families_need_decides_what_is_trained():
    listed = [family.resolve(n) for n in LEGACY_FAMILIES]
    assert family.plan(listed, _ev()) == {family.CACHED_ORACLE: 1, family.RANDOM_MODEL: 1}
    assert family.plan(listed, _ev(retrain=True))[family.ORACLE] == 1
    full = family.plan(listed, _ev(shadows=4, fq_runs=3))
    assert full == {family.ORACLE: 1, family.RANDOM_MODEL: 1, family.SHADOW_PAIRS: 4, family.RETRAINS: 2,
                    family.ORIGINALS: 2, family.METHOD_RUNS: 6}
    assert family.plan([ulira.FAMILY], _ev(fq_runs=3)) == {}  # U-LiRA off: its shadows are not trained
    assert family.CACHED_ORACLE not in family.plan([oracle.FAMILY, ulira.FAMILY], _ev(shadows=2))


class _Store:
    """The part of a run's ModelStore the oracle's resolution reads."""

    def __init__(self, cached: bool):
        self.cached, self.trained = cached, 0

    def oracle_cached(self):
        return self.cached

    def oracle(self):
        self.trained += 1
        return "model", {"sha256": "0" * 64}

    def logits(self, model, meta):
        return {"forget_train": np.zeros((1, 2))}


@pytest.mark.parametrize("needs,cached,used", [({}, True, False),
                                               ({family.CACHED_ORACLE: 1}, False, False),
                                               ({family.CACHED_ORACLE: 1}, True, True),
                                               ({family.ORACLE: 1}, False, True)])
def test_the_oracle_is_trained_only_when_a_family_needs_it(tmp_path, needs, cached, used):
    ctx, store = SimpleNamespace(cfg=OmegaConf.create({"eval": {"seed": 0, "mia_draws": 1}})), _Store(cached)
    state = EvalState(ctx, store, tmp_path, None, None, {}, None, {}, {}, {}, needs)
    assert (state.oracle() is not None) == used and (state.oracle() is not None) == used
    assert store.trained == int(used)  # built once, however many families ask


def test_cached_attack_results_keep_their_names():
    state = SimpleNamespace(seed=3, draws=50, meta_o={"sha256": "abcdef0123456789" * 4})
    assert population.tag(state) == "mia-v4-seed3-draws50-oabcdef012345"
    assert population.FAMILY.version == population.VERSION == 4


def test_metric_info_is_the_union_of_the_families(answer_module):
    shipped = family.shipped()
    assert {"accuracy", "population", "oracle", "zrf", "entropy", "per_class", "roc"} <= set(shipped)
    for name in shipped:
        assert set(family.resolve(name).info) <= set(METRIC_INFO), name
    assert set(zrf.INFO) == {"zrf"} and METRIC_INFO["zrf"] is zrf.INFO["zrf"]
    assert "answer/forget_size" in collect([*shipped, answer_module])


def test_a_key_two_families_describe_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "twinfams").mkdir()
    (tmp_path / "twinfams" / "__init__.py").write_text("")
    (tmp_path / "twinfams" / "zrf.py").write_text("from unlearn_bench.eval.families.zrf import FAMILY\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="'zrf' is described by two families"):
        collect(["zrf", "twinfams.zrf"])


def test_forget_class_entropy_against_scipy(tmp_path):
    rng = np.random.default_rng(0)
    splits = ("forget_train", "forget_test", "retain_train", "retain_test")
    logits_u, logits_o = ({s: rng.normal(0, k, (20, 4)) for s in splits} for k in (1.0, 6.0))
    state = SimpleNamespace(logits_u=logits_u, logits_o=logits_o, oracle=lambda: None)
    out = entropy.compute(state)
    assert set(out) == {"entropy/forget_train", "entropy/forget_test", "original/entropy/forget_train",
                        "original/entropy/forget_test"}
    for s in ("forget_train", "forget_test"):
        want = sp_entropy(sp_softmax(logits_u[s], axis=1), axis=1).mean()
        assert out[f"entropy/{s}"] == pytest.approx(want)
    assert out["original/entropy/forget_train"] < out["entropy/forget_train"]  # sharper: less uncertain
    assert set(entropy.INFO) <= set(METRIC_INFO) and "entropy" not in LEGACY_FAMILIES


def test_metric_info_complete():
    keys = {"acc/forget_train", "acc/forget_test", "acc/retain_train", "acc/retain_test", "acc/test",
            "mia/svc_confidence", "mia/entropy_member_rate", "mia/loss_cv_acc", "mia/fr", "mia/fs",
            "gap/avg_to_retrain", "dist/js_forget", "dist/js_test", "zrf", "relearn/steps", "relearn/ain",
            "mia/ulira_auc", "mia/ulira_bal_acc", "mia/ulira_tpr_at_1fpr", "fq/score",
            "fq/forgetting_quality", "cost/unlearn_s", "cost/peak_mem_mb", "cost/eval_s"}
    assert keys <= set(METRIC_INFO)
    for key, info in METRIC_INFO.items():
        assert info.direction in {"higher", "lower", "closer_to_retrain", "n/a"} and info.retrain_reference
        if key in keys - {"cost/peak_mem_mb", "cost/eval_s"}:  # every real metric states a direction
            assert info.direction != "n/a", key
    md = metric_info_markdown()
    assert all(f"`{k}`" in md for k in keys) and md.count("\n") == len(METRIC_INFO) + 2


def test_readme_and_docs_metric_tables_are_generated_from_metric_info():
    root = Path(__file__).resolve().parent.parent
    assert metric_info_markdown() in (root / "README.md").read_text()
    assert (root / "docs" / "metrics.md").read_text() == metrics_doc()


def test_a_listed_family_its_settings_switch_off_is_not_run():
    """eval=fast lists every family; relearn, U-LiRA, FQ and KLOM are off under its settings, so neither
    the run nor its log line names them (eval=full switches them on)."""
    def on(level, *overrides):
        return [f.name for f in family.active(compose([f"eval={level}", *overrides]).eval)]
    assert on("fast") == ["accuracy", "population", "zrf", "oracle", "per_class", "roc"]
    assert on("full") == family.listed(compose(["eval=full"]).eval)
    assert "klom" not in on("full", "eval.klom=false") and "fq" in on("full", "eval.klom=false")


def test_a_run_evaluates_only_the_families_switched_on(digits_cfg, tmp_path, caplog):
    caplog.set_level("INFO", logger="unlearn_bench")
    m = pipeline.run(digits_cfg("method=none", "eval.relearn=true"), tmp_path / "run")
    [line] = [r.getMessage() for r in caplog.records if ": evaluating " in r.getMessage()]
    assert line.startswith("none: evaluating accuracy, population, zrf, oracle, relearn, per_class, roc")
    assert "relearn/steps" in m and not any(k.startswith(("fq/", "klom/", "mia/ulira")) for k in m)
