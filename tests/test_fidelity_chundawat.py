"""Bad Teacher (Chundawat et al. AAAI'23), UNSIR (Tarun et al. TNNLS'23) and GKT (Chundawat et al. TIFS'23)
run as their authors' code runs: the data each step reads, one step's loss terms and reduction, train/eval
mode, the generator's schedule. Expected values are recomputed here with numpy or by hand."""

import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from unlearn_bench.config import compose
from unlearn_bench.data.batches import Normalizer, Subset
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.train import loop


def _subset(counts: dict[int, int], shape=(1, 4, 4), seed=0) -> Subset:
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((n,), c) for c, n in counts.items()])
    y = y[torch.randperm(len(y), generator=g)]  # classes interleaved, as in a training set
    x = torch.randint(0, 256, (len(y), *shape), generator=g, dtype=torch.uint8)
    return Subset(x, y, Normalizer((0.5,) * shape[0], (0.3,) * shape[0], "cpu"))


def _data(retain, forget, regime=Regime.FULL, classes=3) -> UnlearnData:
    sets = {"retain": retain, "forget": forget, "unseen": forget}
    return UnlearnData(regime, "test", classes, [0], "cpu", 0, None, _sets=sets, progress=False)


def _np_softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _record_fit(monkeypatch, on_call=None):
    """Replace the training loop's ``fit`` (which ``UnlearnData.fit`` calls) by a recorder of (batches
    materialised, loss_fn); no training happens."""
    calls = []

    def fake_fit(model, batches, loss_fn, optimizer, device, **kw):
        calls.append({"batches": [tuple(t.clone() for t in b) for b in batches], "loss": loss_fn, "kw": kw})
        if on_call is not None:
            on_call(model, calls[-1])
        return [0.0]

    monkeypatch.setattr(loop, "fit", fake_fit)
    return calls


# ---------------------------------------------------------------- Bad Teacher

def test_bad_teacher_mixes_all_of_d_f_with_a_truncated_30_percent_of_d_r_in_shuffled_batches(monkeypatch):
    import baselines.bad_teacher as bt
    calls = _record_fit(monkeypatch)
    retain, forget = _subset({1: 21, 2: 21}), _subset({0: 10}, seed=1)
    bt.BadTeacher(batch_size=8).unlearn(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), _data(retain, forget))
    flags = torch.cat([y for _, y in calls[0]["batches"]])
    # int(0.3 * 42) = 12 retain images (random.sample(retain, int(0.3 * len))), not round() = 13
    assert len(flags) == 10 + 12 and int(flags.sum()) == 10
    sizes = [len(y) for _, y in calls[0]["batches"]]
    assert sizes == [8, 8, 6]  # DataLoader(shuffle=True, drop_last=False)
    assert any(0 < int(y.sum()) < len(y) for _, y in calls[0]["batches"])  # forget and retain share batches


def test_bad_teacher_loss_is_the_element_mean_kl_to_the_flagged_teacher(monkeypatch):
    """The authors' UnlearnerLoss: F.kl_div(log_softmax(s/T), p) with the default reduction, i.e. the sum
    over samples and classes divided by B * C, no T^2 (unlearn.py:9-19); p is the incompetent teacher's
    softmax on forget samples and the original's on retain samples."""
    import baselines.bad_teacher as bt
    teachers = []
    real_random_copy = bt.random_copy
    monkeypatch.setattr(bt, "random_copy", lambda m: teachers.append(real_random_copy(m)) or teachers[-1])
    calls = _record_fit(monkeypatch)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    original = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    original.load_state_dict(model.state_dict())
    bt.BadTeacher(batch_size=64, temperature=2.0).unlearn(model, _data(_subset({1: 20, 2: 20}),
                                                                      _subset({0: 10}, seed=1)))
    x, flag = calls[0]["batches"][0]
    with torch.no_grad():
        got = float(calls[0]["loss"](model, (x, flag)))
        s, good, bad = (m(x).numpy() for m in (model, original, teachers[0]))
    T = 2.0
    p = np.where(flag.numpy()[:, None] == 1, _np_softmax(bad / T), _np_softmax(good / T))
    log_q = np.log(_np_softmax(s / T))
    expected = (p * (np.log(p) - log_q)).sum() / p.size
    assert got == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- UNSIR

class _Spy(nn.Module):
    """Counts forward calls and the train/eval mode they ran in."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return x


def _unsir_model(shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), 8), nn.BatchNorm1d(8), nn.ReLU(),
                         nn.Linear(8, 3), _Spy())


def test_unsir_learns_noise_for_40_steps_in_train_mode_moving_batchnorm_statistics(monkeypatch):
    _record_fit(monkeypatch)
    torch.manual_seed(0)
    model = _unsir_model((1, 4, 4))
    model.eval()  # the harness hands the original over in eval mode
    stats = model[2].running_mean.clone()
    method = instantiate(compose(["method=unsir"]).method)
    method.unlearn(model, _data(_subset({1: 12, 2: 12}), _subset({0: 6}, seed=1)))
    # the notebook's 5 epochs x 8 steps, with the freshly loaded model in train mode (cells 23-24)
    assert model[-1].modes == [True] * 40
    assert not torch.equal(model[2].running_mean, stats)


@pytest.mark.parametrize("rows, expected_noise, distinct", [("channels", 20 * 3, 3), ("all", 20 * 5, 5)])
def test_unsir_impair_set_holds_copies_of_the_first_channel_count_noise_images(monkeypatch, rows,
                                                                              expected_noise, distinct):
    """Cell 26's loop over range(batch[0].size(0)) takes the channel count of one image (3 here), so the
    impair set holds 20 copies of 3 noise images; unsir_full_noise takes every row of the noise batch."""
    import baselines.unsir as us
    calls = _record_fit(monkeypatch)
    torch.manual_seed(0)
    shape = (3, 4, 4)
    retain = _subset({1: 12, 2: 9}, shape=shape)
    us.UNSIR(retain_per_class=10, noise_per_class=5, noise_steps=2, noise_rows=rows).unlearn(
        _unsir_model(shape), _data(retain, _subset({0: 6}, shape=shape, seed=1)))
    x = torch.cat([b[0] for b in calls[0]["batches"]])
    y = torch.cat([b[1] for b in calls[0]["batches"]])
    noise = x[y == 0]
    assert len(noise) == expected_noise and len(x) == expected_noise + 10 + 9
    assert len(torch.unique(noise.flatten(1), dim=0)) == distinct


def test_unsir_retain_sample_is_the_first_k_of_each_class_in_set_order(monkeypatch):
    import baselines.unsir as us
    calls = _record_fit(monkeypatch)
    torch.manual_seed(0)
    retain = _subset({1: 12, 2: 9, 3: 4})
    us.UNSIR(retain_per_class=5, noise_per_class=4, noise_steps=1).unlearn(
        _unsir_model((1, 4, 4)), _data(retain, _subset({0: 6}, seed=1), classes=4))
    got = torch.cat([b[0] for b in calls[1]["batches"]])  # the repair step reads the D_r sample alone
    y = retain.y.numpy()
    pick = [i for c in (1, 2, 3) for i in np.flatnonzero(y == c)[:5]]  # classwise_train[c][:k]
    expected = retain.normalize(retain.x[pick])
    assert len(got) == len(pick) == 14
    key = lambda t: sorted(map(tuple, t.flatten(1).numpy().round(5).tolist()))  # noqa: E731
    assert key(got) == key(expected)


# ---------------------------------------------------------------- GKT

def test_gkt_generator_is_the_authors_for_their_two_image_sizes():
    from baselines.gkt import conv_generator
    for shape, kernel in [((1, 28, 28), (7, 7)), ((3, 32, 32), (3, 3))]:
        gen = conv_generator(128, shape)
        convs = [m for m in gen.modules() if isinstance(m, nn.Conv2d)]
        assert gen[0].out_features == 128 * 8 * 8 and [c.out_channels for c in convs] == [128, 64, shape[0]]
        assert convs[-1].kernel_size == kernel and convs[-1].padding == (1, 1)
        assert isinstance(gen[-1], nn.BatchNorm2d) and gen[-1].affine
        assert gen(torch.randn(2, 128)).shape == (2, *shape)


def _pseudo(student_steps, iterations, **kw):
    from baselines.gkt import PseudoBatches, generator
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    student = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    keep_all = lambda t: torch.ones(len(t), dtype=torch.bool)  # noqa: E731
    return PseudoBatches(generator(4, 8, (1, 4, 4)), teacher, student, iterations, student_steps, 6, 4, 1e-3,
                         "cpu", keep_all, **kw)


def test_gkt_reuses_one_z_for_a_pseudo_batch(monkeypatch):
    """LearnableLoader draws z once per n_repeat_batch = 1 + 10 calls (unlearn.py:115-122): the student's
    steps of a pseudo-batch all see the same images, and the next pseudo-batch new ones."""
    draws = []
    real = torch.randn
    monkeypatch.setattr(torch, "randn", lambda *a, **k: draws.append(a) or real(*a, **k))
    batches = list(_pseudo(student_steps=3, iterations=2))
    assert len(batches) == 6 and len(draws) == 2
    xs = [x for x, _ in batches]
    assert all(torch.equal(xs[0], x) for x in xs[1:3]) and all(torch.equal(xs[3], x) for x in xs[4:])
    assert not torch.equal(xs[0], xs[3])


def test_gkt_generator_lr_halves_at_every_third_evaluation():
    """The notebook steps ReduceLROnPlateau(patience=2, factor=0.5) with a value that never changes, every
    50 pseudo-batches: the first call sets the best, then every third call halves the lr."""
    for evaluations in (3, 4, 7, 11):
        pb = _pseudo(student_steps=1, iterations=evaluations, evaluate_every=1)
        list(pb)
        expected = 1e-3 * 0.5 ** ((evaluations - 1) // 3)
        assert pb.opt.param_groups[0]["lr"] == pytest.approx(expected)


def test_gkt_student_step_is_eval_mode_element_mean_kl_plus_attention_transfer(monkeypatch):
    """KT_loss_student (unlearn.py:40-52): KL with F.kl_div's default element-mean + 250 * sum over the
    conv activations of mean((a_s - a_t)^2), a = l2-normalised channel-mean of squares; only the kept
    samples count; the student runs in eval mode (BatchNorm statistics untouched)."""
    import baselines.gkt as gkt
    seen = {}

    def on_call(student, call):
        x = torch.randn(6, 1, 4, 4)
        keep = torch.tensor([True, False, True, True, False, True])
        stats = student[1].running_mean.clone()
        seen["loss"] = float(call["loss"](student, (x, keep)))
        seen["stats_kept"] = torch.equal(stats, student[1].running_mean)
        seen["x"], seen["keep"] = x, keep
        seen["student"] = {k: v.clone() for k, v in student.state_dict().items()}

    _record_fit(monkeypatch, on_call)
    monkeypatch.setattr(gkt.PseudoBatches, "__iter__", lambda self: iter(()))  # no generator work here
    torch.manual_seed(0)

    def net():
        return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                             nn.Linear(32, 3))

    model = net()
    with torch.no_grad():  # the original's statistics differ from a fresh student's
        model[1].running_mean.fill_(0.3)
        model[1].running_var.fill_(2.0)
    original = net()
    original.load_state_dict(model.state_dict())
    gkt.GKT(iterations=1, student_steps=1, batch_size=6, z_dim=4).unlearn(
        model, _data(None, _subset({0: 4}), regime=Regime.ZERO_SHOT))
    assert seen["stats_kept"]
    student = net().eval()
    student.load_state_dict(seen["student"])
    original.eval()
    k = seen["keep"].numpy()
    x = seen["x"][seen["keep"]]
    with torch.no_grad():
        a_s, a_t = student[:3](x).numpy(), original[:3](x).numpy()
        s, t = student(x).numpy(), original(x).numpy()
    p, log_q = _np_softmax(t), np.log(_np_softmax(s))
    kl = (p * (np.log(p) - log_q)).sum() / p.size

    def att(a):
        m = (a ** 2).mean(1).reshape(len(a), -1)
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    at = ((att(a_s) - att(a_t)) ** 2).mean()
    assert k.sum() == 4
    assert seen["loss"] == pytest.approx(kl + 250.0 * at, rel=1e-4)
