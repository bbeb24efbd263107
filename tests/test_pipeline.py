"""End to end on digits: run directory contents, cache hit, regime enforcement, bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from unlearn_bench.data.batches import Normalizer
from unlearn_bench.errors import ConfigError, RegimeError
from unlearn_bench.methods.base import Regime, Subset, UnlearnData
from unlearn_bench.run import models, pipeline
from unlearn_bench.run.store import load_results
from unlearn_bench.train import loop as training


def test_end_to_end_writes_the_run_directory(digits_cfg, tmp_path):
    m = pipeline.run(digits_cfg("method=none", "forget.classes=[3]"), tmp_path / "run")
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.yaml", "split.json", "metrics.json", "env.json", "predictions.npz"} <= files
    for k in ("acc/forget_train", "acc/forget_test", "acc/retain_train", "acc/retain_test", "acc/test",
              "original/acc/forget_train", "cost/unlearn_s", "cost/peak_mem_mb"):
        assert k in m
    assert m["acc/retain_test"] > 0.85  # the MLP learns digits
    assert m["acc/forget_train"] == m["original/acc/forget_train"]  # `none` changes nothing
    pred = np.load(tmp_path / "run" / "predictions.npz")
    assert pred["logits_forget_train"].shape == (len(pred["labels_forget_train"]), 10)
    acc = (pred["logits_retain_test"].argmax(1) == pred["labels_retain_test"]).mean()
    assert acc == pytest.approx(m["acc/retain_test"])
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    assert env["packages"]["torch"] and "git_commit" in env
    df = load_results(tmp_path)
    assert len(df) == 1 and df.loc[0, "method"] == "none"


def test_second_run_hits_the_cache(digits_cfg, tmp_path, monkeypatch):
    pipeline.run(digits_cfg("forget.classes=[1]"), tmp_path / "a")

    def boom(*a, **k):
        raise AssertionError("the original model was retrained")
    monkeypatch.setattr(models, "fit", boom)
    m = pipeline.run(digits_cfg("forget.classes=[2]"), tmp_path / "b")
    assert m["original_cache_hit"] is True


def test_corrupt_cache_entry_is_retrained(digits_cfg, tmp_path, cache_dir):
    cfg = digits_cfg("forget.classes=[1]", "seed=7")
    pipeline.run(cfg, tmp_path / "a")
    from pathlib import Path
    [pt] = [p for p in Path(cache_dir, "original").glob("*.pt")
            if json.loads(p.with_suffix(".json").read_text())["spec"]["seed"] == 7]
    pt.write_bytes(pt.read_bytes()[:100])  # truncated
    m = pipeline.run(cfg, tmp_path / "b")
    assert m["original_cache_hit"] is False


def test_regime_is_enforced():
    n = Normalizer((0.0,), (1.0,), "cpu")
    s = Subset(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), n)
    data = UnlearnData(Regime.ZERO_SHOT, "m", 10, [0], "cpu", 0, None,
                       _sets={"retain": s, "forget": s, "unseen": s})
    assert data.unseen is s
    for name in ("retain", "forget"):
        with pytest.raises(RegimeError):
            _ = getattr(data, name)
    with pytest.raises(RegimeError):
        data.retrain_oracle()
    with pytest.raises(RegimeError):
        _ = data.unseen_retain
    forget_only = UnlearnData(Regime.FORGET_ONLY, "m", 10, [0], "cpu", 0, None,
                              _sets={"forget": s, "unseen": s})
    assert forget_only.forget is s
    for name in ("retain", "unseen"):  # forget-only means D_f alone, not the unseen pool too
        with pytest.raises(RegimeError):
            _ = getattr(forget_only, name)
    full = UnlearnData(Regime.FULL, "m", 10, [0], "cpu", 0, None,
                       _sets={"retain": s, "forget": s, "unseen": s})
    assert full.retain is s and full.forget is s
    with pytest.raises(RegimeError):
        _ = full.unseen
    with pytest.raises(RegimeError, match="oracle"):  # full regime, but not the retrain row: no oracle
        full.retrain_oracle()


def test_report_never_pools_different_setups(digits_cfg, tmp_path):
    from unlearn_bench.report.tables import summarize
    a = pipeline.run(digits_cfg("forget.classes=[1]"), tmp_path / "a")
    b = pipeline.run(digits_cfg("forget.classes=[1]", "forget.unseen.source=test",
                                "forget.unseen.per_class=20"), tmp_path / "b")
    c = pipeline.run(digits_cfg("forget.classes=[2]"), tmp_path / "c")
    assert a["setup"] != b["setup"] and a["setup"] == c["setup"]  # forget classes are not part of a setup
    table = summarize(load_results(tmp_path))
    none_rows = table[(table["method"] == "Original") & (table["forget"].astype(str) == "1")]
    assert len(none_rows) == 2 and set(none_rows["n"]) == {1}


@pytest.mark.parametrize("overrides, fragment", [
    (["forget.classes=[12]"], "out of range"),
    (["forget.classes=[]"], "empty"),
    (["forget.unseen.per_class=500"], "per_class"),
    (["model=vit_tiny", "model.patch=3"], "does not fit"),
    (["train.optimizer.lr=-1"], "lr"),
])
def test_bad_input_raises_before_writing(digits_cfg, tmp_path, overrides, fragment):
    with pytest.raises(ConfigError) as e:
        pipeline.run(digits_cfg(*overrides), tmp_path / "run")
    assert fragment in str(e.value) and "\n" not in str(e.value) and "fix" in str(e.value)
    assert not (tmp_path / "run").exists()


def test_cli_unknown_method_lists_options(tmp_path):
    r = subprocess.run([sys.executable, "-m", "unlearn_bench.cli", "method=nope", f"runs_dir={tmp_path}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "nope" in r.stderr and "none" in r.stderr
    assert not list(tmp_path.rglob("metrics.json"))


def test_cli_bad_forget_class_is_one_line(tmp_path, cache_dir):
    r = subprocess.run([sys.executable, "-m", "unlearn_bench.cli", "forget.classes=[42]",
                        f"runs_dir={tmp_path}", f"cache_dir={cache_dir}"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: forget class")
    assert not list(tmp_path.rglob("metrics.json"))


def test_divergence_is_detected():
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(Exception, match="NaN"):
        training.check_finite(model)


def test_reference_attacks_are_computed_once_per_sweep(digits_cfg, tmp_path, monkeypatch):
    """The original's and the oracle's population attacks are cached beside their logits: a second method
    of the same setup reads them (identical values) instead of fitting the attackers again."""
    from unlearn_bench.eval import suite as eval_suite
    calls = []
    real = eval_suite.population_mias
    monkeypatch.setattr(eval_suite, "population_mias", lambda *a, **k: calls.append(1) or real(*a, **k))
    own = f"cache_dir={tmp_path / 'cache'}"  # a private cache: no earlier test may have filled it
    first = pipeline.run(digits_cfg("method=finetune", "method.epochs=1", "eval.retrain=true", own),
                         tmp_path / "a")
    assert len(calls) == 3  # original, oracle, unlearned
    second = pipeline.run(digits_cfg("method=grad_ascent", "method.epochs=1", "eval.retrain=true", own),
                          tmp_path / "b")
    assert len(calls) == 4  # only the unlearned model's
    for k in ("original/mia/svc_confidence", "original/mia/fr", "retrain/mia/entropy_member_rate"):
        assert second[k] == first[k]
    third = pipeline.run(digits_cfg("method=grad_ascent", "method.epochs=1", "eval.retrain=true",
                                    "eval.seed=1", own), tmp_path / "c")
    assert len(calls) == 7 and "original/mia/svc_confidence" in third  # another attacker seed: recomputed


def test_norm_stats_reach_the_unlearning_step_but_not_the_reference_models(digits_cfg, tmp_path, monkeypatch):
    from unlearn_bench.methods.base import Regime
    from unlearn_bench.methods.identity import Identity
    from unlearn_bench.train import loop as training
    seen = {}
    real_fit = training.fit

    def spy_fit(*a, **k):  # every training of the run: the models the store trains and the method's own
        seen.setdefault("fits", []).append(k.get("norm_stats"))
        return real_fit(*a, **k)

    def spy_unlearn(self, model, data):
        seen["unlearn"] = data.norm_stats
        # a method that needs the oracle may train it lazily, inside the unlearning step
        data.retrain_oracle()
        data.fit(model, data.retain.batches(64, seed=0), training.cross_entropy(),
                 lambda p: torch.optim.SGD(p, lr=0.0), epochs=1)
        return model

    monkeypatch.setattr(models, "fit", spy_fit)
    monkeypatch.setattr(training, "fit", spy_fit)
    monkeypatch.setattr(Identity, "unlearn", spy_unlearn)
    monkeypatch.setattr(Identity, "needs_oracle", True)
    monkeypatch.setattr(Identity, "regime", Regime.FULL)
    m = pipeline.run(digits_cfg("method=none", "norm_stats=frozen", "train.epochs=1"), tmp_path / "run")
    # original, oracle (trained lazily inside the step): update; the method's own training: frozen
    assert m["status"] == "ok" and seen["unlearn"] == "frozen"
    assert seen["fits"] == ["update", "update", "frozen"]
