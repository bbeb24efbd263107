"""Tests for unlearn_bench.methods.lra_npp.relevance: LRP via zennit, BatchNorm folding, top-K unit
selection."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from unlearn_bench.methods.lra_npp.relevance import (
    RULES,
    canonize_copy,
    composite,
    epsilon_closed_form,
    feature_relevance,
    input_relevance,
    layer_relevance,
    select_units,
    topk_occurrence,
)


def conv_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 6, 3, padding=1)), ("relu1", nn.ReLU()), ("pool", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(6, 8, 3, padding=1)), ("relu2", nn.ReLU()), ("gap", nn.AdaptiveAvgPool2d(2)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(32, 16)), ("relu3", nn.ReLU()),
        ("head", nn.Linear(16, 5)),
    ]))
    model.feature_layer = "head"
    return model.eval()


def bn_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 6, 3, padding=1)), ("bn1", nn.BatchNorm2d(6)), ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(6, 8, 3, padding=1, bias=False)), ("bn2", nn.BatchNorm2d(8)),
        ("relu2", nn.ReLU()),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(8 * 8 * 8, 16)), ("bn3", nn.BatchNorm1d(16)),
        ("relu3", nn.ReLU()), ("head", nn.Linear(16, 5)),
    ]))
    randomise_bn(model)
    model.feature_layer = "head"
    return model.eval()


def randomise_bn(model: nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.3, 3)
                m.weight.uniform_(0.5, 2)
                m.bias.uniform_(-0.5, 0.5)


def n_bn(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def images(n=6, seed=1, shape=(3, 8, 8)):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


# (a) zennit's epsilon rule at the last Linear equals the closed form
@pytest.mark.parametrize("eps", [0.1, 1e-3])
def test_epsilon_rule_matches_closed_form(eps):
    model, x = conv_mlp(), images()
    labels = torch.tensor([0, 1, 2, 3, 4, 0])  # mostly non-predicted classes: z_c of both signs
    for target in ("predicted", labels):
        r, pred = feature_relevance(model, x, target=target, rule="epsilon", epsilon=eps)
        r_cf, pred_cf = epsilon_closed_form(model, x, target=target, epsilon=eps)
        # independent hand computation of R_i = a_i w_ci / (z_c + eps sign z_c)
        with torch.no_grad():
            a = model[:-1](x)
            z = model.head(a)
        c = z.argmax(1) if isinstance(target, str) else labels
        z_c = z[torch.arange(len(x)), c]
        r_hand = a * model.head.weight[c] / (z_c + eps * torch.where(z_c >= 0, 1.0, -1.0))[:, None]
        assert r.shape == (len(x), 16)
        assert torch.equal(pred, z.argmax(1)) and torch.equal(pred_cf, pred)
        torch.testing.assert_close(r, r_hand, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(r_cf, r_hand, atol=1e-5, rtol=1e-5)
        r_fast, _ = feature_relevance(model, x, target=target, epsilon=eps, method="closed_form")
        torch.testing.assert_close(r_fast, r_cf)
    assert (z_c < 0).any() and (z_c > 0).any()  # both signs exercised


# (b) conservation in a bias-free ReLU MLP under the epsilon rule with tiny epsilon
def test_conservation_bias_free_mlp():
    torch.manual_seed(3)
    model = nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(12, 20, bias=False)), ("relu1", nn.ReLU()),
        ("fc2", nn.Linear(20, 10, bias=False)), ("relu2", nn.ReLU()), ("head", nn.Linear(10, 4, bias=False)),
    ])).double().eval()
    model.feature_layer = "head"
    x = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    rel, pred = layer_relevance(model, x, ["fc1", "fc2", "head"], rule="epsilon", epsilon=1e-9)
    r_in = input_relevance(model, x, rule="epsilon", epsilon=1e-9)  # (N, 2, 2)
    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    z_c = logits[torch.arange(5), pred]
    (grad,) = torch.autograd.grad(z_c.sum(), xg)
    z_c = z_c.detach()
    # the seed is one-hot (relevance 1 at logit c), so each layer's relevance sums to 1 = z_c / z_c;
    # scaled by the seeded logit, the input relevance sums back to that logit
    for name in ("fc1", "fc2", "head"):
        torch.testing.assert_close(rel[name].sum(1), torch.ones(5, dtype=torch.float64), rtol=1e-2, atol=0)
    torch.testing.assert_close(r_in.sum((1, 2)) * z_c, z_c, rtol=1e-2, atol=0)
    # LRP-0 in a bias-free ReLU net is gradient x input (divided by the seeded logit)
    torch.testing.assert_close(r_in * z_c[:, None, None], (x * grad).sum(1), rtol=1e-4, atol=1e-8)


# (c) one batched pass equals per-image passes stacked
def test_batched_equals_per_image():
    model, x = conv_mlp(), images(5)
    names = ["conv2", "fc1", "head"]
    for rule in ("epsilon", "alpha2_beta1"):
        batch, pred = layer_relevance(model, x, names, rule=rule)
        singles = [layer_relevance(model, x[i:i + 1], names, rule=rule) for i in range(len(x))]
        for name in names:
            torch.testing.assert_close(batch[name], torch.cat([s[0][name] for s in singles]), atol=1e-5,
                                       rtol=1e-5)
        assert torch.equal(pred, torch.cat([s[1] for s in singles]))
        heat = input_relevance(model, x, rule=rule)
        torch.testing.assert_close(heat, torch.cat([input_relevance(model, x[i:i + 1], rule=rule)
                                                    for i in range(len(x))]), atol=1e-5, rtol=1e-5)


# (d) BatchNorm folding keeps the function and removes every BatchNorm
@pytest.mark.parametrize("traced", [False, True])
def test_canonize_copy_folds_batchnorm(traced):
    model, x = bn_model(), images(4)
    with torch.no_grad():
        before = model(x)
    canon = canonize_copy(model, example=x[:1] if traced else None)
    assert n_bn(canon) == 0 and n_bn(model) == 3  # original untouched
    assert canon.feature_layer == "head" and not canon.training
    with torch.no_grad():
        torch.testing.assert_close(canon(x), before, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(model(x), before, atol=0, rtol=0)
    assert canon.conv2.bias is not None
    # relevance on the folded copy agrees with the closed form on the original
    r, _ = feature_relevance(model, x)
    torch.testing.assert_close(r, epsilon_closed_form(model, x)[0], atol=1e-4, rtol=1e-4)


def test_canonize_resnet_and_traced_pairing():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=5)
    randomise_bn(net)
    net.feature_layer = "fc"
    net.eval()
    x = images(2, shape=(3, 16, 16))
    canon = canonize_copy(net)
    assert n_bn(canon) == 0
    with torch.no_grad():
        torch.testing.assert_close(canon(x), net(x), atol=1e-4, rtol=1e-4)

    class Odd(nn.Module):  # BN registered before the conv it follows: only tracing can pair them
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(4)
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, z):
            return self.bn(self.conv(z)).mean((2, 3))

    odd = Odd()
    randomise_bn(odd)
    odd.eval()
    with torch.no_grad():
        ref = odd(x)
        for example, expected_bn in ((None, 1), (x[:1], 0)):
            c = canonize_copy(odd, example=example)
            assert n_bn(c) == expected_bn
            torch.testing.assert_close(c(x), ref, atol=1e-4, rtol=1e-4)


# (e) every rule runs and gives finite output; unknown names are rejected
def test_rules_finite_and_bad_name():
    model, x = bn_model(), images(3)
    for rule in RULES:
        composite(rule)
        r, pred = feature_relevance(model, x, rule=rule)
        rel, _ = layer_relevance(canonize_copy(model), x, ["conv2", "fc1"], rule=rule)
        heat = input_relevance(model, x, rule=rule)
        assert r.shape == (3, 16) and heat.shape == (3, 8, 8) and pred.shape == (3,)
        for t in (r, heat, *rel.values()):
            assert torch.isfinite(t).all(), rule
        assert r.abs().sum() > 0 and heat.abs().sum() > 0, rule
    with pytest.raises(ValueError, match="alpha2_beta1"):
        composite("lrp_magic")
    with pytest.raises(ValueError, match="valid rules"):
        feature_relevance(model, x, rule="zplus")
    with pytest.raises(ValueError):
        feature_relevance(model, x, rule="gamma", method="closed_form")
    with pytest.raises(ValueError):
        feature_relevance(model, x, target="argmax")


# (f) top-K occurrence counts and selection of the H most frequent units
def test_topk_occurrence_and_select_units():
    R = torch.tensor([[3.0, 1.0, 2.0, 0.0],
                      [0.0, 5.0, 4.0, 1.0],
                      [1.0, 1.0, 0.0, 0.0],     # tie: lower index wins
                      [0.0, 0.0, 9.0, 8.0],
                      [-1.0, -5.0, -2.0, -3.0]])  # signed: the least negative are on top
    counts = topk_occurrence(R, 2)
    assert counts.tolist() == [3, 2, 4, 1]
    assert select_units(counts, 2).tolist() == [2, 0]
    assert select_units(torch.tensor([1, 3, 3, 0, 3]), 3).tolist() == [1, 2, 4]
    assert select_units(counts, 4).dtype == torch.long
    assert topk_occurrence(R, 0).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError):
        topk_occurrence(R, 5)
    with pytest.raises(ValueError):
        select_units(counts, 5)


# (g) relevance at a convolution's input is per channel
def test_conv_layer_relevance_shape():
    model, x = conv_mlp(), images(4)
    rel, pred = layer_relevance(model, x, ["conv1", "conv2"])
    assert rel["conv1"].shape == (4, 3) and rel["conv2"].shape == (4, 6) and pred.shape == (4,)
    # conv1's input is the image: its channel relevance is the pixel relevance summed over space
    heat = input_relevance(model, x, canonize=False)
    torch.testing.assert_close(rel["conv1"].sum(1), heat.sum((1, 2)), atol=1e-5, rtol=1e-5)
    assert not model.training and all(p.grad is None for p in model.parameters())
    for m in model.modules():  # no zennit or capture hooks left behind
        assert not m._forward_pre_hooks and not m._forward_hooks


def test_ties_go_to_the_unit_seen_first_like_the_authors_counter():
    from collections import Counter

    from unlearn_bench.methods.lra_npp.relevance import topk_first_seen
    R = torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 0.5], [0.2, 0.1, 0.9]])
    counts, first = topk_occurrence(R, 1), topk_first_seen(R, 1)
    assert counts.tolist() == [1, 1, 1] and first.tolist() == [1, 0, 2]
    assert select_units(counts, 3, first).tolist() == [1, 0, 2]  # seen first: unit 1 (row 0), then 0, then 2
    assert select_units(counts, 3).tolist() == [0, 1, 2]  # without it: lower index
    tally = Counter(int(i) for row in R for i in torch.argsort(row, descending=True, stable=True)[:1])
    assert select_units(counts, 3, first).tolist() == [u for u, _ in tally.most_common()]
    assert topk_first_seen(R, 0).tolist() == [0, 0, 0]  # nothing seen: every unit gets N * k = 0
