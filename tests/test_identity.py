"""Run identity across releases: the hashes that name finished runs and cached models are those the
previous layout computed (values recorded with unlearn-bench at 2a29f03, before the package moved to its
stage layout), so a sweep resumed after an upgrade skips its finished runs and reuses its cached models."""

import pytest

from unlearn_bench.config import compose
from unlearn_bench.run.context import Setup
from unlearn_bench.run.identity import HASHED_TARGETS, config_hash, setup_hash, spec_key

RECORDED = [  # overrides, config_hash, setup_hash, original's cache key, oracle's cache key
    (["data=digits", "model=mlp", "method=lra_npp"], "4bfe7aead1f30162", "4b931ee4",
     "f2e145a2c5afeac36aec", "900c6d0750bf4d796c0f"),
    (["experiment=default"], "a0678a3510730829", "b04b2ce2", None, None),
    (["data=digits", "model=mlp", "method=scrub", "seed=1", "method_seed=2"], "cbe38888a342ccc0", "4b931ee4",
     "86a6949ba8e2ac6225c4", "e8406eb0b87d3d720abb"),
    (["data=arrays", "data.path=/nonexistent/x.npz", "model=mlp", "method=finetune"], "9e16d30caa13da78",
     "c5dbc783", None, None),
    (["data=folder", "data.path=/nonexistent/dir", "model=lenet5", "method=ssd"], "2ab741f896d1e811",
     "34746d9a", None, None),
    (["data=digits", "model=mlp", "method=retrain", "eval=full"], "6f44d851e81e1ec4", "7381b54b",
     "f2e145a2c5afeac36aec", "900c6d0750bf4d796c0f"),
    (["data=digits", "model=mlp", "method=bad_teacher", "forget.classes=[3,4]"], "aa9974212384bad1",
     "4b931ee4", "f2e145a2c5afeac36aec", "9daf2739d5a750a1e567"),
]


@pytest.mark.parametrize("overrides,chash,shash,okey,rkey", RECORDED, ids=lambda v: None)
def test_hashes_match_the_previous_layout(overrides, chash, shash, okey, rkey):
    cfg = compose(overrides)
    assert config_hash(cfg) == chash
    assert setup_hash(cfg) == shash
    if okey is not None:
        setup = Setup.from_config(cfg)
        assert spec_key(setup.spec()) == okey
        assert spec_key(setup.retrain_spec()) == rkey


@pytest.mark.parametrize("new,old", sorted(HASHED_TARGETS.items()))
def test_a_moved_loader_keys_its_models_as_before(new, old):
    spec = {"data": {"_target_": new, "fingerprint": "abc", "size": None}, "seed": 0}
    assert spec_key(spec) == spec_key({**spec, "data": {**spec["data"], "_target_": old}})
    assert spec_key(spec) != spec_key({**spec, "data": {**spec["data"], "_target_": new + "2"}})


def test_every_moved_loader_is_what_conf_names():
    for group in ("arrays", "folder"):
        assert compose([f"data={group}"]).data._target_ in HASHED_TARGETS
