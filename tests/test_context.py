"""The run context and its model store: a frozen context whose tensors exist once it is built, validation
that stays on the CPU, and reference models trained under the cache keys, initialisations and batch orders
they had before the store existed (values recorded with the code at dfa1089)."""

from dataclasses import FrozenInstanceError, fields

import pytest
import torch

from unlearn_bench.eval.reference_models import ReferenceModels
from unlearn_bench.run.cache import ModelCache
from unlearn_bench.run.context import SUBSETS, Context, Setup
from unlearn_bench.run.identity import spec_key
from unlearn_bench.run.models import ModelStore
from unlearn_bench.run.validate import validate_config

# per method: (kind, cache key, sum of |initial weights|, shuffle seed, training images) of every model
# the store is asked for, in order: original, oracle, 2 shadow pairs, then forgetting quality's and KLOM's
# 3-model ensembles (method=retrain also trains the twins it is handed instead of the oracle)
RECORDED = {
    "none": [
        ("original", "f2e145a2c5afeac36aec", 3168.962439, 0, 947),
        ("retrain", "00fdc1cad83e7555ca8e", 3193.377384, 0, 851),
        ("shadow_original", "2ddf890dae06bfa2dc8e", 3174.895156, 2000003, 521),
        ("shadow_retrain", "2ddf890dae06bfa2dc8e", 3172.392615, 2000003, 425),
        ("shadow_original", "224d95c2f3ae2ed80e92", 3181.567483, 2007922, 521),
        ("shadow_retrain", "224d95c2f3ae2ed80e92", 3177.362809, 2007922, 425),
        ("fq_retrain", "c2fc0bcfebd7b675cecb", 3166.494656, 3007936, 851),
        ("fq_retrain", "ed4d541bd3ec7b27fe13", 3178.402621, 3015855, 851),
        ("klom_original", "06d98cfa8395c0755db4", 3187.38426, 4007956, 947),
        ("klom_original", "22922ed1924246e9a892", 3188.760149, 4015875, 947),
    ],
    "retrain": [
        ("original", "f2e145a2c5afeac36aec", 3168.962439, 0, 947),
        ("retrain", "00fdc1cad83e7555ca8e", 3193.377384, 0, 851),
        ("shadow_original", "2ddf890dae06bfa2dc8e", 3174.895156, 2000003, 521),
        ("shadow_retrain", "2ddf890dae06bfa2dc8e", 3172.392615, 2000003, 425),
        ("shadow_retrain", "66399e5ea07120a7f807", 3188.142589, 2000005, 425),
        ("shadow_original", "224d95c2f3ae2ed80e92", 3181.567483, 2007922, 521),
        ("shadow_retrain", "224d95c2f3ae2ed80e92", 3177.362809, 2007922, 425),
        ("shadow_retrain", "88e23a9f339d096482a2", 3175.316101, 2007924, 425),
        ("fq_retrain", "6aa286392e4aba5f17ef", 3175.756179, 3000022, 851),
        ("fq_retrain", "24f5f2fdbcf1dc729070", 3187.443589, 3007941, 851),
        ("fq_retrain", "c2fc0bcfebd7b675cecb", 3166.494656, 3007936, 851),
        ("fq_retrain", "27f3a49c2c8c05540957", 3168.378624, 3015860, 851),
        ("fq_retrain", "ed4d541bd3ec7b27fe13", 3178.402621, 3015855, 851),
        ("fq_retrain", "6aa286392e4aba5f17ef", 3175.756179, 3000022, 851),
        ("fq_retrain", "24f5f2fdbcf1dc729070", 3187.443589, 3007941, 851),
        ("fq_retrain", "27f3a49c2c8c05540957", 3168.378624, 3015860, 851),
    ],
}


def _cfg(digits_cfg, method, *extra):
    return digits_cfg("device=cpu", f"method={method}", "forget.classes=[5]", *extra)


def test_the_context_is_frozen(digits_cfg):
    ctx = Context.from_config(_cfg(digits_cfg, "none"))
    with pytest.raises(FrozenInstanceError):
        ctx.train_x = ctx.test_x
    with pytest.raises(FrozenInstanceError):
        ctx.channels_last = True
    with pytest.raises(TypeError):  # the subsets too: a run reads them, never swaps one
        ctx.subsets["forget_train"] = ctx.subsets["retain_train"]
    setup = validate_config(_cfg(digits_cfg, "none"))
    with pytest.raises(FrozenInstanceError):
        setup.split = None


def test_its_tensors_exist_once_it_is_built_and_nothing_is_added_later(digits_cfg):
    ctx = Context.build(validate_config(_cfg(digits_cfg, "none")))
    names = {f.name for f in fields(Context)}
    assert set(vars(ctx)) == names  # every attribute is a declared field, set by the constructor
    assert tuple(ctx.subsets) == SUBSETS and ctx.unseen_retain is not None
    assert ctx.train_x.device.type == "cpu" and not ctx.channels_last  # images 8 px wide, but on the CPU
    assert len(ctx.train_subset(ctx.split.retain_train)) == len(ctx.subsets["retain_train"])
    store = ModelStore(ctx)
    original, meta, _ = store.original()
    store.oracle()
    store.logits(original, meta)
    assert set(vars(ctx)) == names


@pytest.fixture
def trained(monkeypatch):
    """What the cache is asked to train, instead of training it: (kind, key, sum of |initial weights|,
    shuffle seed, training images) per request. Each model is returned as initialised."""
    seen = []

    class Stop(Exception):
        pass

    def get_or_train(self, kind, spec, build, train, resumable=False):
        model = build()
        init = round(float(sum(p.detach().double().abs().sum() for p in model.parameters())), 6)

        def batches(subset, batch_size, shuffle=True, seed=0, augment=False, drop_last=False):
            seen.append((kind, spec_key(spec), init, int(seed), len(subset)))
            raise Stop
        with monkeypatch.context() as m:
            from unlearn_bench.methods.base import Subset
            m.setattr(Subset, "batches", batches)
            with pytest.raises(Stop):
                train(model, None)
        return model, {"sha256": "0" * 64}, True
    monkeypatch.setattr(ModelCache, "get_or_train", get_or_train)
    return seen


@pytest.mark.parametrize("method", ["none", "retrain"])
def test_the_store_trains_every_model_as_before(digits_cfg, trained, method):
    ctx = Context.build(validate_config(_cfg(digits_cfg, method)))
    store = ModelStore(ctx)
    original, _, _ = store.original()
    store.oracle()
    refs = ReferenceModels(ctx, store=store)
    refs.shadows(2, 7)
    refs.fq_ensembles(3, original, original)
    refs.klom_margins(3, original)
    assert [row[:2] for row in trained] == [row[:2] for row in RECORDED[method]]  # cache keys, in order
    for got, want in zip(trained, RECORDED[method], strict=True):  # initialisation, batch order, data
        assert got[2] == pytest.approx(want[2], rel=1e-9) and got[3:] == want[3:], (got, want)


def test_reference_kinds_are_checked(digits_cfg, trained):
    store = ModelStore(Context.from_config(_cfg(digits_cfg, "none")))
    with pytest.raises(ValueError, match="half_seed"):
        store.reference("shadow_original", 0)
    with pytest.raises(ValueError, match="no reference model 'klom_original' twin"):
        store.reference("klom_original", 1, twin=True)
    assert not trained


def test_validating_a_sweep_puts_nothing_on_the_device(digits_cfg, monkeypatch):
    """Validation and the sweep check build a CPU-only ``Setup``: with CUDA claimed but absent, any tensor
    sent to the device would raise."""
    from unlearn_bench.cli.sweep_check import check_sweep

    def build(setup):
        raise AssertionError("validation built a device context")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(Context, "build", build)
    setup = validate_config(_cfg(digits_cfg, "lra_npp", "method.n=10", "device=cuda"))
    assert type(setup) is Setup and setup.device == "cuda" and setup.precision == "bf16-mixed"
    assert setup.data.train_x.device.type == "cpu"
    assert check_sweep(["data=digits", "model=mlp", "device=cuda", "method=none,finetune", "seed=0,1"]) == 2


def test_channels_last_places_the_data_and_every_model_it_trains(digits_cfg):
    """What CUDA gets under channels_last=auto, forced on the CPU: 8-pixel-wide images qualify."""
    ctx = Context.from_config(_cfg(digits_cfg, "none", "model=lenet5", "channels_last=true",
                                   "train.epochs=1"))
    assert ctx.channels_last and ctx.subsets["retain_train"].channels_last
    model, _, _ = ModelStore(ctx).original()
    conv = [p for p in model.parameters() if p.dim() == 4][1]  # 6 input channels: the layout shows
    assert not conv.is_contiguous() and conv.is_contiguous(memory_format=torch.channels_last)
