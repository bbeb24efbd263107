"""SSD and LF-SSD (Foster, Schoepf & Brintrup, AAAI'24 / ICLR'24 Tiny Paper) as the authors' code runs them
(if-loops/selective-synaptic-dampening@cdfdc0e): importances over unshuffled loaders of 64, each set grouped
by class, D = D_r then D_f, the short last batch kept and every batch weighing the same; α = 10, 5 on a ViT.

The expected dampening is recomputed here in closed form on a linear softmax model, whose batch gradients
are (p - onehot)ᵀx / n (cross-entropy) and 2·outᵀx / n (mean squared output norm), over batches cut by
hand from the authors' order. Squaring (or taking |·| of) each batch's gradient before summing is what
makes the result depend on which images share a batch: a per-set gradient or a shuffled loader gives
another set of dampened weights.
"""

import copy

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from unlearn_bench.config import compose
from unlearn_bench.data.batches import Normalizer, Subset
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.models.mlp import mlp
from unlearn_bench.models.vit import vit_tiny

MEAN, STD = 0.5, 0.3


def _data(seed=0, n=190, classes=3):
    """D_r and D_f in dataset order, as the harness hands them over: D_r interleaves classes 1 and 2."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 4, 4), generator=g, dtype=torch.uint8)
    y = torch.randint(0, classes, (n,), generator=g)
    norm = Normalizer((MEAN,), (STD,), "cpu")
    f = y == 0
    sets = {"retain": Subset(x[~f], y[~f], norm), "forget": Subset(x[f], y[f], norm)}
    return UnlearnData(Regime.FULL, "test", classes, [0], "cpu", seed, None, _sets=sets, progress=False), sets


def _linear(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def _batch_grads(w, b, x, y, kind):
    """Closed-form gradient of one batch's mean loss for logits = x wᵀ + b."""
    x = (x.double() / 255 - MEAN) / STD
    x = x.reshape(len(x), -1)
    out = x @ w.T + b
    if kind == "ce":
        r = torch.softmax(out, dim=1) - torch.nn.functional.one_hot(y, w.shape[0]).double()
    else:  # mean over the batch of ||out||^2
        r = 2 * out
    return r.T @ x / len(x), r.mean(0)


def _importance(w, b, x, y, order, batch, kind):
    """Σ over consecutive batches of ``order`` of transform(batch gradient), divided by the batch count."""
    chunks = [order[i:i + batch] for i in range(0, len(order), batch)]
    imp_w, imp_b = torch.zeros_like(w), torch.zeros_like(b)
    for idx in chunks:
        gw, gb = _batch_grads(w, b, x[idx], y[idx], kind)
        t = torch.square if kind == "ce" else torch.abs
        imp_w, imp_b = imp_w + t(gw), imp_b + t(gb)
    return imp_w / len(chunks), imp_b / len(chunks)


def _expected(model, sets, forget_order, full_order, batch, kind, alpha, lam=1.0):
    lin = model[1]
    w, b = lin.weight.detach().double(), lin.bias.detach().double()
    r, f = sets["retain"], sets["forget"]
    x_full, y_full = torch.cat([r.x, f.x]), torch.cat([r.y, f.y])
    imp_f = _importance(w, b, f.x, f.y, forget_order, batch, kind)
    imp_d = _importance(w, b, x_full, y_full, full_order, batch, kind)
    out, masks = [], []
    for p, fi, di in zip((w, b), imp_f, imp_d):
        mask = fi > alpha * di
        beta = (lam * di / fi).clamp(max=1.0)
        out.append(torch.where(mask, p * beta, p))
        masks.append(mask)
    return out, masks


def _authors_orders(sets):
    """The authors' build: classes in ascending order, dataset order within a class; D = D_r then D_f."""
    r, f = sets["retain"], sets["forget"]
    retain = sorted(range(len(r.y)), key=lambda i: (int(r.y[i]), i))
    forget = sorted(range(len(f.y)), key=lambda i: (int(f.y[i]), i))
    return forget, retain + [len(r.y) + i for i in forget]


@pytest.mark.parametrize("label, kind", [("ssd", "ce"), ("lf_ssd", "norm")])
def test_importances_come_from_the_authors_unshuffled_class_grouped_batches_of_64(label, kind):
    data, sets = _data()
    model = _linear()
    before = copy.deepcopy(model)
    cfg = compose([f"method={label}", "method.alpha=1.5"])  # a tiny model needs a low α to select anything
    method = instantiate(cfg.method)
    method.unlearn(model, data)

    batch = 64
    n_forget, n_retain = len(sets["forget"].y), len(sets["retain"].y)
    assert n_forget % batch and (n_retain + n_forget) % batch  # both sets end in a short batch
    forget_order, full_order = _authors_orders(sets)
    (w, b), (mw, mb) = _expected(before, sets, forget_order, full_order, batch, kind, alpha=1.5)
    assert 0 < int(mw.sum() + mb.sum()) < mw.numel() + mb.numel()  # some weights selected, some kept
    torch.testing.assert_close(model[1].weight.detach().double(), w, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(model[1].bias.detach().double(), b, rtol=1e-5, atol=1e-7)
    assert method.extra_metrics["ssd/selected"] == int(mw.sum() + mb.sum())

    # the class grouping is not vacuous here: D_r in dataset order would select another set
    n_r = len(sets["retain"].y)
    plain = list(range(n_r)) + [n_r + i for i in forget_order]
    _, (pw, pb) = _expected(before, sets, forget_order, plain, batch, kind, alpha=1.5)
    assert not (torch.equal(pw, mw) and torch.equal(pb, mb))


def test_ssd_shuffled_keeps_the_seeded_shuffled_batches_of_128():
    data, sets = _data(n=300)
    model = _linear()
    before = copy.deepcopy(model)
    method = instantiate(compose(["method=ssd_shuffled", "method.alpha=1.5"]).method)
    method.unlearn(model, data)

    n_f, n_d = len(sets["forget"].y), len(sets["retain"].y) + len(sets["forget"].y)
    # each loader owns a generator seeded with the run's seed and draws one permutation per pass
    forget_order = torch.randperm(n_f, generator=torch.Generator().manual_seed(data.seed)).tolist()
    full_order = torch.randperm(n_d, generator=torch.Generator().manual_seed(data.seed)).tolist()
    (w, b), (mw, mb) = _expected(before, sets, forget_order, full_order, 128, "ce", alpha=1.5)
    assert 0 < int(mw.sum() + mb.sum()) < mw.numel() + mb.numel()
    torch.testing.assert_close(model[1].weight.detach().double(), w, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(model[1].bias.detach().double(), b, rtol=1e-5, atol=1e-7)


def _dampened(method_cfg, model, data, **overrides):
    model = copy.deepcopy(model)
    instantiate(method_cfg, **overrides).unlearn(model, data)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("label", ["ssd", "lf_ssd", "ssd_shuffled"])
def test_alpha_is_ten_and_five_on_a_vision_transformer(label):
    """forget_full_class_main.py:161-177: selection_weighting = 10 * model_size_scaler, 0.5 for ViT."""
    data, _ = _data(n=80)
    cfg = compose([f"method={label}"]).method
    torch.manual_seed(0)
    for model, alpha, other in [(mlp((1, 4, 4), 3, hidden=(8,)), 10.0, 5.0),
                                (vit_tiny((1, 4, 4), 3, patch=2, dim=16, depth=1, heads=2), 5.0, 10.0)]:
        got = _dampened(cfg, model, data)
        assert torch.equal(got, _dampened(cfg, model, data, alpha=alpha))
        assert not torch.equal(got, _dampened(cfg, model, data, alpha=other))  # α matters here
