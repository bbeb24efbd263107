"""The CUDA path: runs only where a GPU is visible (``pytest -m gpu``; ``benchmarks/gpu_suite.sh`` runs it).

What the CPU suite cannot show: the pipeline end to end on CUDA (bf16 training, fp32 outputs, channels_last),
the training step without host synchronisation, and LRA-NPP choosing the same units on GPU as on CPU.
"""

import copy
import json
import warnings
from functools import partial

import numpy as np
import pytest
import torch

from unlearn_bench.data.batches import Normalizer, TensorBatches
from unlearn_bench.eval import outputs as evaluation
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.methods.lra_npp import LRANPP
from unlearn_bench.models import lenet5
from unlearn_bench.run import pipeline
from unlearn_bench.run.context import Context
from unlearn_bench.run.models import ModelStore
from unlearn_bench.train.loop import cross_entropy, fit, precision_scope

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("method", ["lra_npp", "finetune", "scrub"])
def test_pipeline_on_cuda(digits_cfg, tmp_path, method):
    extra = ["method.epochs=1"] if method == "finetune" else []
    cfg = digits_cfg("device=cuda", "model=lenet5", f"method={method}", "forget.classes=[3]", *extra)
    m = pipeline.run(cfg, tmp_path / method)
    assert m["status"] == "ok", m.get("reason")
    assert m["original/acc/retain_test"] > 0.8  # bf16 training still learns digits
    env = json.loads((tmp_path / method / "env.json").read_text())
    assert env["device"] == "cuda" and env["device_name"] == torch.cuda.get_device_name()
    pred = np.load(tmp_path / method / "predictions.npz")
    assert pred["logits_retain_test"].dtype == np.float32


def test_cuda_defaults_are_bf16_and_channels_last(digits_cfg):
    ctx = Context.from_config(digits_cfg("device=cuda", "model=lenet5"))
    assert ctx.precision == "bf16-mixed" and ctx.channels_last
    model, meta, _ = ModelStore(ctx).original()
    w = [p for p in model.parameters() if p.dim() == 4][1]
    assert w.is_cuda and w.is_contiguous(memory_format=torch.channels_last)
    assert meta["spec"]["precision"] == "bf16-mixed"  # cached apart from fp32 models of the same config


def _syncs(steps: int) -> int:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64 * steps, 1, 8, 8), generator=g, dtype=torch.uint8).cuda()
    y = torch.randint(0, 10, (64 * steps,), generator=g).cuda()
    batches = TensorBatches(x, y, Normalizer((0.5,), (0.25,), "cuda"), 64, seed=0)
    torch.manual_seed(0)
    model = lenet5((1, 8, 8), 10).cuda()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with precision_scope("bf16-mixed"):
                fit(model, batches, cross_entropy(), partial(torch.optim.Adam, lr=1e-3), "cuda", epochs=1,
                    progress=False)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def test_training_steps_do_not_synchronise_with_the_host():
    """Host syncs per fit may come from setup and the epoch's loss read-out, never from each step."""
    _syncs(2)  # warm-up: one-off syncs of the first CUDA work are not the fit's
    few, many = _syncs(5), _syncs(25)
    assert few >= 1, "no sync seen at all: the epoch's loss read-out should be one (is the detector working?)"
    assert many == few, (f"{few} syncs for 5 steps, {many} for 25: something in the step reads back to the "
                         f"host")


def test_lra_npp_picks_the_same_units_on_gpu_as_on_cpu(digits_cfg, monkeypatch):
    # plain fp32 on the GPU: an earlier fit in this process may have switched TF32 on for matmuls
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    ctx = Context.from_config(digits_cfg("device=cpu", "forget.classes=[3]"))
    model, _, _ = ModelStore(ctx).original()
    units = {}
    for device in ("cpu", "cuda"):
        pool = ctx.subsets["unseen"]
        if device == "cuda":
            pool = type(pool)(pool.x.cuda(), pool.y.cuda(), Normalizer(ctx.data.mean, ctx.data.std, "cuda"),
                              pool.augment, False)
        data = UnlearnData(regime=Regime.ZERO_SHOT, method="lra_npp", num_classes=10, forget_classes=[3],
                           device=device, seed=0, recipe=None, _sets={"unseen": pool}, progress=False)
        method = LRANPP(n=20)
        method.unlearn(copy.deepcopy(model).to(device), data)
        units[device] = set(method.report["layers"][0]["units"])
    overlap = len(units["cpu"] & units["cuda"]) / len(units["cpu"])
    assert overlap >= 0.9, overlap  # fp32 relevance on both; only ties at the cut-off may differ


def test_outputs_are_fp32_in_big_batches_on_cuda(digits_cfg):
    ctx = Context.from_config(digits_cfg("device=cuda", "model=lenet5"))
    model, _, _ = ModelStore(ctx).original()
    sizes = []
    hook = model.register_forward_pre_hook(lambda m, args: sizes.append(len(args[0])))
    try:
        out = evaluation.predict_logits(model, ctx.subsets["retain_train"])
    finally:
        hook.remove()
    n = len(ctx.subsets["retain_train"])
    assert out.dtype == np.float32 and out.shape[0] == n
    assert sizes == [n] if n <= evaluation.GPU_BATCH else sizes[0] == evaluation.GPU_BATCH  # one big batch


def test_a_model_trained_on_cuda_stays_there_for_its_evaluation():
    """The pipeline evaluates the unlearned model right after ``method.unlearn``, without placing it
    again: a loop that handed it back on the CPU would make every training method's run fail on CUDA."""
    x = torch.randint(0, 255, (64, 1, 8, 8), dtype=torch.uint8, device="cuda")
    y = torch.randint(0, 3, (64,), device="cuda")
    batches = TensorBatches(x, y, Normalizer([0.5], [0.25], "cuda"), 16, True, 0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)).cuda()
    fit(model, batches, cross_entropy(), partial(torch.optim.SGD, lr=0.1), "cuda", epochs=1, progress=False)
    assert all(p.is_cuda for p in model.parameters())
