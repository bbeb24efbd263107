"""SCRUB, NegGrad+, Boundary Shrink and JiT run as their authors' code runs them: which batches each step
sees and in what order, one step's loss against a formula written out here, the optimizer and schedule,
and per-recipe / per-architecture values. Training is replaced by a recorder, so nothing here trains."""

import copy

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from unlearn_bench.config import compose
from unlearn_bench.data.batches import Normalizer, Subset
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.models.vit import vit_tiny
from unlearn_bench.train import loop

SHAPE = (1, 4, 4)
NORM = Normalizer((0.5,), (0.25,), "cpu")


class Recorder:
    """Stands in for ``fit``: per call, the optimizer it builds, its learning rate, every batch of every
    epoch (in order) and the loss function; nothing is stepped."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, batches, loss_fn, optimizer, device, epochs=None, **_):
        opt = optimizer(model.parameters())
        passes = [list(batches) for _ in range(epochs or 1)]
        self.calls.append(dict(opt=opt, lr=opt.param_groups[0]["lr"], passes=passes, loss=loss_fn,
                               model=model))
        return [0.0] * (epochs or 1)


def marked(n, label, first=0):
    """n images whose first pixel is their index (so a batch names its items) and a constant label."""
    x = torch.zeros(n, *SHAPE, dtype=torch.uint8)
    flat = x.view(n, 16)
    flat[:, 0] = torch.arange(first, first + n).remainder(256).to(torch.uint8)
    flat[:, 1:] = torch.randint(0, 256, (n, flat.shape[1] - 1), generator=torch.Generator().manual_seed(n))
    return Subset(x, torch.full((n,), label), NORM)


def ids(x):
    return [round(v) for v in (x.view(len(x), -1)[:, 0] * 0.25 + 0.5).mul(255).tolist()]


def data(regime=Regime.FULL, n_retain=40, n_forget=20, n_unseen=0, num_classes=3):
    sets = {"retain": marked(n_retain, 1), "forget": marked(n_forget, 0, first=100),
            "unseen": marked(n_unseen, 0, first=100)}
    return UnlearnData(regime, "m", num_classes, [0], "cpu", 0, None, _sets=sets, progress=False)


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def method(name, *overrides):
    return instantiate(compose([f"method={name}", *[f"method.{o}" for o in overrides]]).method)


# -- SCRUB (meghdadk/SCRUB@98ffb11) ---------------------------------------------------------------------
def test_scrub_small_recipe_phase_order_loader_sizes_schedule_and_optimizer(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(loop, "fit", rec)
    method("scrub").unlearn(mlp(), data())  # a 3-class task: the small-scale recipe (authors: 5 classes)
    phases = ["F" if ids(c["passes"][0][0][0])[0] >= 100 else "R" for c in rec.calls]
    assert phases == ["F", "R"] * 3 + ["R"] * 7  # 10 epochs, the first 3 open with a max-pass on D_f
    sizes = [[len(b[0]) for b in c["passes"][0]] for c in rec.calls]
    assert sizes[:2] == [[20], [32, 8]]  # D_f in batches of 64, D_r in batches of 32, short last batch kept
    assert [c["lr"] for c, p in zip(rec.calls, phases) if p == "F"] == [5e-4] * 3
    min_lrs = [c["lr"] for c, p in zip(rec.calls, phases) if p == "R"]
    assert min_lrs == pytest.approx([5e-4] * 5 + [5e-5] * 3 + [5e-6, 5e-7])  # x0.1 after epochs 5, 8, 9
    opt = rec.calls[0]["opt"]
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["weight_decay"] == 0.1
    assert all(c["opt"] is opt for c in rec.calls)  # one optimizer: its moments carry across the phases


def test_scrub_large_recipe_from_six_classes(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(loop, "fit", rec)
    assert method("scrub").resolve(5)["recipe"] == "small" and method("scrub").resolve(6)["recipe"] == "large"
    d = data(n_retain=4400, n_forget=600, num_classes=10)  # a 10-class task, as the authors' CIFAR-10
    method("scrub").unlearn(mlp(), d)
    assert [len(c["passes"][0]) for c in rec.calls] == [2, 18, 2, 18, 18]  # 512 / 256 batches, F R F R R
    assert [len(b[0]) for b in rec.calls[0]["passes"][0]] == [512, 88]
    assert [len(b[0]) for b in rec.calls[1]["passes"][0]][-1] == 4400 - 17 * 256
    opt = rec.calls[0]["opt"]
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    assert opt.defaults["weight_decay"] == 5e-4 and [c["lr"] for c in rec.calls] == [5e-4] * 5  # no decay


def _distill_kl(s, t, T):
    """DistillKL of the authors' thirdparty/repdistiller/distiller_zoo/KD.py: summed KL, x T^2 / batch."""
    return F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="sum") * T ** 2 / s.shape[0]


def test_scrub_loss_terms_of_one_step(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(loop, "fit", rec)
    teacher = mlp()
    method("scrub").unlearn(copy.deepcopy(teacher), data())
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    xf, yf = rec.calls[0]["passes"][0][0]
    xr, yr = rec.calls[1]["passes"][0][0]
    T, gamma, alpha = 2.0, 1.0, 0.5  # small_scale_unlearning.ipynb:422, :415, :416
    with torch.no_grad():
        want_max = -_distill_kl(student(xf), teacher(xf), T)
        want_min = gamma * F.cross_entropy(student(xr), yr) + alpha * _distill_kl(student(xr), teacher(xr), T)
    assert float(rec.calls[0]["loss"](student, (xf, yf))) == pytest.approx(float(want_max), rel=1e-5)
    assert float(rec.calls[1]["loss"](student, (xr, yr))) == pytest.approx(float(want_min), rel=1e-5)


# -- NegGrad+ (SCRUB repo, loops.py train_negrad) ------------------------------------------------------
def test_neggrad_plus_cycles_one_forget_pass_per_epoch_and_uses_plain_sgd(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(loop, "fit", rec)
    m = method("neggrad_plus", "epochs=2")
    m.unlearn(mlp(), data(n_retain=600, n_forget=70))  # 5 retain batches of 128, 3 forget batches of 32
    (call,) = rec.calls
    for epoch in call["passes"]:
        assert [len(r[0]) for r, _ in epoch] == [128, 128, 128, 128, 88]
        forget = [tuple(ids(f[0])) for _, f in epoch]
        assert sorted(sum(map(list, forget[:3]), [])) == list(range(100, 170))  # one full pass, then ...
        assert forget[3:] == forget[:2]  # ... itertools.cycle replays it in order, no reshuffle
    first = [ids(epoch[0][1][0]) for epoch in call["passes"]]
    assert first[0] != first[1]  # each epoch opens a fresh, reshuffled pass over D_f
    opt = call["opt"]
    assert opt.defaults["momentum"] == 0 and opt.defaults["weight_decay"] == 0 and call["lr"] == 0.01
    (xr, yr), (xf, yf) = call["passes"][0][0]
    model = mlp()
    with torch.no_grad():
        want = 0.9999 * F.cross_entropy(model(xr), yr) - 0.0001 * F.cross_entropy(model(xf), yf)
        assert float(call["loss"](model, ((xr, yr), (xf, yf)))) == pytest.approx(float(want), rel=1e-6)


# -- Boundary Shrink (TY-LEE-KR/Boundary-Unlearning-Code@19f9f23) --------------------------------------
def test_boundary_shrink_keeps_the_true_label_where_fgsm_fails(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(loop, "fit", rec)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():  # class 0 scores the first pixel, class 1 the second; class 2 is never reached
        lin[1].weight.zero_()
        lin[1].weight[0, 0], lin[1].weight[1, 1], lin[1].weight[2, 2] = 1.0, 1.0, -5.0
        lin[1].bias.copy_(torch.tensor([0.0, 0.0, -50.0]))
    d = data(Regime.FORGET_ONLY, n_forget=100)
    BS = method("boundary_shrink")
    BS.unlearn(copy.deepcopy(lin), d)
    (call,) = rec.calls
    x, y = call["passes"][0][0]
    # by hand: CE on a linear map has input gradient W^T (softmax - onehot); pixel space = x * 0.25 + 0.5
    w, b = lin[1].weight, lin[1].bias
    with torch.no_grad():
        flat = x.view(len(x), -1)
        g = (F.softmax(flat @ w.T + b, 1) - F.one_hot(y, 3).float()) @ w
        pixels = (flat * 0.25 + 0.5 + 0.1 * g.sign()).clamp(0, 1)
        adv = (torch.round(pixels * 255) / 255 - 0.5) / 0.25
        target = (adv @ w.T + b).argmax(1)  # over ALL classes: a sample that stays in class 0 keeps label 0
        want = F.cross_entropy(lin(x), target)  # trained on the original image, not the adversarial one
    assert (target == y).any() and (target != y).any()
    assert float(call["loss"](lin, (x, y))) == pytest.approx(float(want), rel=1e-6)
    assert len(call["passes"]) == 10 and [len(b[0]) for b in call["passes"][0]] == [64, 36]
    assert call["lr"] == 1e-5 and call["opt"].defaults["momentum"] == 0.9


# -- JiT (jwf40/Zeroshot-Unlearning-At-Scale@f7e3f20) ---------------------------------------------------
def test_jit_sums_the_clamped_lipschitz_ratio_over_an_unshuffled_batch(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(loop, "fit", rec)
    method("jit").unlearn(mlp(), data(Regime.ZERO_SHOT, n_unseen=150))
    (call,) = rec.calls
    a = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    lin = nn.Sequential(nn.Flatten(), nn.Linear(16, 3, bias=False))
    with torch.no_grad():
        lin[1].weight.copy_(a)
    x = call["passes"][0][1][0]
    torch.manual_seed(7)
    got = call["loss"](lin, (x, None))
    torch.manual_seed(7)
    noise = torch.randn(25, *x.shape) * 0.5  # sigma 0.5 for a non-ViT model (main:152)
    flat = x.view(len(x), -1)
    ratios = []
    for xi in noise:  # one noisy copy of the batch at a time, clamped to its range (lipschitz.py:43-48)
        d = (flat - (x + xi).clamp(x.min(), x.max()).view(len(x), -1))
        ratios.append(((d @ a.T).norm(dim=1) / d.norm(dim=1)).sum())  # summed over the batch
    assert float(got) == pytest.approx(float(torch.stack(ratios).mean()), rel=1e-5)
    assert [ids(b[0]) for b in call["passes"][0]] == [list(range(100, 228)), list(range(228, 250))]
    assert isinstance(call["opt"], torch.optim.SGD) and call["lr"] == 3e-4  # the VGG16 value


def test_jit_uses_the_vit_settings_on_a_vit(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(loop, "fit", rec)
    vit = vit_tiny((1, 4, 4), 3, patch=2, dim=8, depth=1, heads=2, mlp_ratio=2)
    method("jit").unlearn(vit, data(Regime.ZERO_SHOT, n_unseen=10))
    assert rec.calls[0]["lr"] == 1.5  # forget_full_class_main.py:145 (sigma 0.8 at :144)
