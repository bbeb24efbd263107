"""Output collection: device-dependent batch size and the CPU channels_last layout give the same logits as a
plain forward pass, and leave the model as trainable as before."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unlearn_bench.data.batches import Normalizer, Subset
from unlearn_bench.eval import outputs as evaluation
from unlearn_bench.models import cnn_paper, mlp


def _subset(n=150, shape=(1, 12, 12), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    return Subset(x, y, Normalizer((0.5,), (0.25,), "cpu"), "none", False)


@pytest.mark.parametrize("factory", [cnn_paper, mlp])
@pytest.mark.parametrize("batch_size", [None, 7, 4096])
def test_logits_match_a_plain_forward_pass(factory, batch_size):
    torch.manual_seed(0)
    s = _subset()
    model = factory((1, 12, 12), 10)
    with torch.no_grad():
        want = model.eval()(s.normalize(s.x)).numpy()
    got = evaluation.predict_logits(model, s, batch_size)
    assert got.shape == (150, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_cpu_layout_is_used_while_running_and_restored_after():
    torch.manual_seed(0)
    s = _subset()
    model = cnn_paper((1, 12, 12), 10)
    seen = []
    conv2 = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][1]
    hook = conv2.register_forward_pre_hook(lambda m, args: seen.append(
        (m.weight.is_contiguous(memory_format=torch.channels_last) and not m.weight.is_contiguous(),
         args[0].is_contiguous(memory_format=torch.channels_last), len(args[0]))))
    evaluation.predict_logits(model, s)
    hook.remove()
    assert seen and all(w and x for w, x, _ in seen)  # weights and inputs in channels_last while it ran
    assert [n for _, _, n in seen] == [64, 64, 22]  # CPU_BATCH-sized batches
    assert all(p.is_contiguous() for p in model.parameters())  # back in the layout training left
    assert all(not p.is_inference() and p.requires_grad for p in model.parameters())
    model.train()
    loss = F.cross_entropy(model(s.normalize(s.x[:8])), s.y[:8])
    loss.backward()  # an inference tensor among the parameters would raise here
    assert all(p.grad is not None for p in model.parameters())


def test_layout_is_restored_when_the_forward_pass_raises():
    s = _subset()
    model = cnn_paper((1, 12, 12), 10)
    conv2 = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][1]

    def boom(m, args):
        raise RuntimeError("out of memory")
    conv2.register_forward_pre_hook(boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        evaluation.predict_logits(model, s)
    assert all(p.is_contiguous() for p in model.parameters())


def test_channels_last_model_is_left_as_it_is():
    s = _subset()
    model = cnn_paper((1, 12, 12), 10).to(memory_format=torch.channels_last)
    evaluation.predict_logits(model, s)
    w = [p for p in model.parameters() if p.dim() == 4][1]  # the first conv has one input channel
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()


def test_eval_batch_size_follows_the_device():
    assert evaluation.eval_batch_size(None, "cpu") == evaluation.CPU_BATCH
    assert evaluation.eval_batch_size(None, "cpu", conv=False) == evaluation.GPU_BATCH
    assert evaluation.eval_batch_size(None, "cuda:0") == evaluation.GPU_BATCH
    assert evaluation.eval_batch_size(512, "cpu") == 512


def test_empty_split_gives_an_empty_array():
    s = _subset(n=0)
    # (0, classes): it concatenates with other splits' outputs
    assert evaluation.predict_logits(cnn_paper((1, 12, 12), 10), s).shape == (0, 10)


def test_anamnesis_index_is_empty_when_neither_model_relearns(monkeypatch):
    s = _subset(n=8)
    subsets = {"forget_train": s, "retain_train": s, "forget_test": s}
    model = cnn_paper((1, 12, 12), 10)
    monkeypatch.setattr(evaluation, "relearn_steps", lambda *a: (5, False))  # both censored at the cap
    out = evaluation.relearn(subsets, model, model, 0.9, 4, 1e-3, 5, 0)
    assert out["relearn/steps"] == out["retrain/relearn/steps"] == 5 and math.isnan(out["relearn/ain"])
    calls = iter([(3, True), (5, False)])  # only the oracle is censored: the ratio is a bound, still reported
    monkeypatch.setattr(evaluation, "relearn_steps", lambda *a: next(calls))
    assert evaluation.relearn(subsets, model, model, 0.9, 4, 1e-3, 5, 0)["relearn/ain"] == pytest.approx(0.6)
