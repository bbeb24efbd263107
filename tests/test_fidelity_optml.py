"""OPTML-Group's baselines (SalUn, RL, FT, GA, l1-sparse) run as their authors' code runs them
(OPTML-Group/Unlearn-Saliency@a6e89fd, Unlearn-Sparse@80ba55d): each case is small enough to recompute
here by a second, independent route (per-batch autograd, a Python sort, hand-built batches)."""

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

import baselines.common
from baselines.random_label import RandomLabel
from baselines.salun import SalUn
from unlearn_bench.data.batches import Normalizer, Subset
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.train import loop

CONF = Path(__file__).resolve().parents[1] / "conf" / "method"
MEAN, STD = 0.5, 0.25
NORM = Normalizer([MEAN], [STD], "cpu")


def tagged(ids, label) -> Subset:
    """Images whose every pixel is the sample's id, so a batch tells which samples it holds."""
    ids = torch.as_tensor(ids)
    return Subset(ids.to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous(),
                  torch.full((len(ids),), label) if isinstance(label, int) else torch.as_tensor(label), NORM)


def ids_of(x: torch.Tensor) -> list[int]:
    return torch.round((x[:, 0, 0, 0] * STD + MEAN) * 255).long().tolist()


def make_data(retain, forget, num_classes=3, seed=0, recipe=None) -> UnlearnData:
    return UnlearnData(Regime.FULL, "m", num_classes, [0], "cpu", seed, recipe,
                       _sets={"retain": retain, "forget": forget}, progress=False)


@pytest.fixture
def recorded(monkeypatch):
    """Replaces training by a recorder of the batches each epoch would see (no step is taken)."""
    rec = SimpleNamespace(epochs=[], batches=None)

    def fake_fit(model, batches, loss_fn, optimizer, device, epochs=1, **kw):
        rec.batches = batches
        for _ in range(epochs):
            rec.epochs.append([(x.clone(), y.clone()) for x, y in batches])
        return [0.0] * epochs

    monkeypatch.setattr(loop, "fit", fake_fit)
    return rec


def tiny_model(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():  # a dead hidden unit: 20 weights with exactly zero gradient, i.e. ties
        model[1].weight[2].zero_()
        model[1].bias[2] = -1.0
    return model


@pytest.mark.parametrize("ratio", [0.5, 0.9])
def test_salun_mask_sums_per_batch_mean_gradients_over_a_seeded_shuffle(recorded, ratio):
    """generate_mask.py:30-63: batches of a seeded shuffle (a short last batch weighs more per sample), the
    MEAN CE per batch, gradients summed, the top int(ratio*N) of |g|; ties go to the earlier index here."""
    g = torch.Generator().manual_seed(1)
    forget = Subset(torch.randint(0, 256, (5, 1, 4, 4), generator=g, dtype=torch.uint8),
                    torch.tensor([0, 1, 2, 0, 1]), NORM)
    model, seed, bs = tiny_model(), 3, 2
    method = SalUn(mask_ratio=ratio, epochs=1, batch_size=bs)
    method.unlearn(copy.deepcopy(model), make_data(tagged(range(100, 104), 1), forget, seed=seed))

    params = [p for p in model.parameters()]
    order = torch.randperm(5, generator=torch.Generator().manual_seed(seed)).tolist()
    x, y = NORM(forget.x), forget.y

    def flat_scores(chunks, reduction):
        total = [torch.zeros_like(p) for p in params]
        for idx in chunks:
            loss = F.cross_entropy(model(x[idx]), y[idx], reduction=reduction)
            total = [t + g for t, g in zip(total, torch.autograd.grad(loss, params))]
        return torch.cat([t.abs().flatten() for t in total]).tolist()

    def top(scores):
        ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        keep = [False] * len(scores)
        # 123 weights: int(61.5) = 61, int(110.7) = 110, not round()
        for i in ranked[:int(ratio * len(scores))]:
            keep[i] = True
        return keep

    expected = top(flat_scores([order[0:2], order[2:4], order[4:5]], "mean"))
    got = torch.cat([m.flatten() for m in method.masks.values()]).tolist()
    assert got == expected
    if ratio == 0.5:  # the cut falls among nonzero scores, where the reductions rank differently
        assert top(flat_scores([list(range(5))], "sum")) != expected
    else:  # the cut falls inside the 20 exact zeros: the tie-break decides
        zero = [i for i, s in enumerate(flat_scores([order[0:2], order[2:4], order[4:5]], "mean")) if s == 0]
        assert len(zero) == 20 and 0 < sum(expected[i] for i in zero) < 20


@pytest.mark.parametrize("method", [RandomLabel(epochs=2, batch_size=2), SalUn(epochs=2, batch_size=2)],
                         ids=["random_label", "salun"])
def test_random_label_runs_a_forget_pass_with_labels_redrawn_per_batch_then_a_retain_pass(recorded, method):
    """RL.py:123-159 (10-class data): each epoch, D_f in batches whose labels are drawn afresh from ALL
    classes (the true one included), then D_r with its own labels; both reshuffled every epoch."""
    forget, retain = tagged(range(5), 0), tagged(range(100, 107), [1, 2, 1, 2, 1, 2, 1])
    seed = 4
    method.unlearn(tiny_model(), make_data(retain, forget, seed=seed))
    draws = torch.Generator().manual_seed(seed)
    orders = []
    for epoch in recorded.epochs:
        assert [len(y) for _, y in epoch] == [2, 2, 1, 2, 2, 2, 1]
        f_ids = [i for x, _ in epoch[:3] for i in ids_of(x)]
        r = epoch[3:]
        assert sorted(f_ids) == list(range(5))
        assert sorted(i for x, _ in r for i in ids_of(x)) == list(range(100, 107))
        for x, y in r:
            assert y.tolist() == [retain.y[i - 100].item() for i in ids_of(x)]
        for _, y in epoch[:3]:
            assert y.tolist() == torch.randint(0, 3, (len(y),), generator=draws).tolist()
        orders.append(f_ids)
    assert orders[0] != orders[1]


def test_random_label_draws_cover_every_class_and_change_between_epochs(recorded):
    forget, retain = tagged(range(200), 0), tagged(range(200, 210), 1)
    RandomLabel(epochs=2, batch_size=64).unlearn(tiny_model(), make_data(retain, forget))
    label = [{}, {}]
    for e, epoch in enumerate(recorded.epochs):
        for x, y in epoch[:4]:
            label[e].update(zip(ids_of(x), y.tolist()))
    assert set(label[0].values()) == {0, 1, 2}  # the true class 0 too
    assert sum(label[0][i] != label[1][i] for i in range(200)) > 100


def test_relabel_rule_follows_the_authors_dataset_branch(recorded):
    """RL.py:51 (cifar100 / TinyImagenet): a shuffled union, D_f's labels redrawn each epoch from all
    classes; RL.py:109 (cifar10 / svhn): the D_f pass then the D_r pass."""
    assert baselines.common.resolve_relabel("auto", 10) == "forget_then_retain"
    assert baselines.common.resolve_relabel("auto", 100) == "union_per_epoch"
    assert baselines.common.resolve_relabel("auto", 200) == "union_per_epoch"
    forget, retain = tagged(range(60), 0), tagged(range(100, 160), 1)
    RandomLabel(epochs=2, batch_size=20).unlearn(tiny_model(), make_data(retain, forget, num_classes=100))
    label = [{}, {}]
    for e, epoch in enumerate(recorded.epochs):
        assert len(epoch) == 6
        assert all(len({i < 100 for i in ids_of(x)}) == 2 for x, _ in epoch[:3])  # mixed batches
        for x, y in epoch:
            label[e].update(zip(ids_of(x), y.tolist()))
        assert all(label[e][i] == 1 for i in range(100, 160))
    assert max(label[0][i] for i in range(60)) > 10  # drawn from all 100 classes
    assert sum(label[0][i] != label[1][i] for i in range(60)) > 50


def test_retain_labels_variant_keeps_the_fixed_union_from_the_retain_classes(recorded):
    method = instantiate(OmegaConf.load(CONF / "random_label_retain_labels.yaml"), epochs=2)
    forget, retain = tagged(range(100), 0), tagged(range(100, 250), 1)
    method.unlearn(tiny_model(), make_data(retain, forget))
    label = [{}, {}]
    for e, epoch in enumerate(recorded.epochs):
        assert [len(y) for _, y in epoch] == [128, 122]
        for x, y in epoch:
            label[e].update(zip(ids_of(x), y.tolist()))
    assert label[0] == label[1] and {label[0][i] for i in range(100)} == {1, 2}


@pytest.mark.parametrize("label, read, epochs", [("finetune", "retain", 10), ("l1_sparse", "retain", 10),
                                                  ("grad_ascent", "forget", 5)])
@pytest.mark.parametrize("augment", [False, True])
def test_loaders_are_the_authors_batch_256_reshuffled_and_augmented_as_the_original(recorded, label, read,
                                                                                    epochs, augment):
    """Unlearn-Sparse arg_parser.py:67 (batch 256) and the training transform on the unlearning loaders."""
    sets = {"retain": tagged(range(600), 1), "forget": tagged(range(100, 700), 0)}
    for s in sets.values():
        s.augment = "crop"
    regime = Regime.FORGET_ONLY if label == "grad_ascent" else Regime.FULL
    data = UnlearnData(regime, "m", 3, [0], "cpu", 0, SimpleNamespace(augment=augment),
                       _sets={k: sets[k] for k in (["forget"] if regime == Regime.FORGET_ONLY else sets)},
                       progress=False)
    instantiate(OmegaConf.load(CONF / f"{label}.yaml")).unlearn(tiny_model(), data)
    assert len(recorded.epochs) == epochs
    assert recorded.batches.augment == ("crop" if augment else "none")
    if not augment:
        first = [[i for x, _ in e for i in ids_of(x)] for e in recorded.epochs[:2]]
        assert [len(y) for _, y in recorded.epochs[0]] == [256, 256, 88]
        assert sorted(first[0]) == sorted(ids_of(NORM(sets[read].x))) and first[0] != first[1]


def test_grad_ascent_step_is_minus_the_mean_ce_with_weight_decay():
    """Unlearn-Sparse GA.py:82 (-criterion, a mean) with the shared SGD (momentum 0.9, weight decay 5e-4,
    impl.py:72-77): the first step is θ - lr·(-∇ mean CE + wd·θ)."""
    g = torch.Generator().manual_seed(0)
    forget = Subset(torch.randint(0, 256, (40, 1, 4, 4), generator=g, dtype=torch.uint8),
                    torch.randint(0, 3, (40,), generator=g), NORM)
    model, lr = tiny_model(), 0.5
    method = instantiate(OmegaConf.load(CONF / "grad_ascent.yaml"), lr=lr, epochs=1)
    data = UnlearnData(Regime.FORGET_ONLY, "m", 3, [0], "cpu", 0, None, _sets={"forget": forget},
                       progress=False)
    out = method.unlearn(copy.deepcopy(model), data)
    params = list(model.parameters())
    grads = torch.autograd.grad(-F.cross_entropy(model(NORM(forget.x)), forget.y), params)
    for p, gp, q in zip(params, grads, out.parameters()):
        torch.testing.assert_close(q.detach(), p.detach() - lr * (gp + 5e-4 * p.detach()), rtol=1e-5,
                                   atol=1e-6)


def test_l1_weight_decays_per_epoch_and_is_not_zero_in_the_last_epoch():
    """Unlearn-Sparse FT.py:92-105: γ_t = γ·(1 - t/T) for the whole epoch t, added to the mean CE, with ‖θ‖₁
    over every parameter; at lr 0 the per-epoch loss is exactly that sum."""
    retain = Subset(torch.randint(0, 256, (30, 1, 4, 4), generator=torch.Generator().manual_seed(2),
                                  dtype=torch.uint8), torch.tensor([1, 2] * 15), NORM)
    model, gamma, epochs = tiny_model(), 0.01, 3
    method = instantiate(OmegaConf.load(CONF / "l1_sparse.yaml"), gamma=gamma, epochs=epochs)
    method.lr = 0.0  # a probe below the declared range (lr > 0) a run is held to: no step moves a weight
    method.unlearn(copy.deepcopy(model), make_data(retain, tagged([1], 0)))
    with torch.no_grad():
        ce = F.cross_entropy(model(NORM(retain.x)), retain.y).item()
        l1 = sum(p.abs().sum().item() for p in model.parameters())
    expected = [ce + gamma * (1 - t / epochs) * l1 for t in range(epochs)]
    assert method.curve == pytest.approx(expected, rel=1e-5)
