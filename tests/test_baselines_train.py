"""Training-based baselines on digits: what each method may read, what it must change and what it must
leave alone (the retrain oracle's data and initialisation, SalUn's unmasked weights)."""

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from baselines.boundary_shrink import BoundaryShrink, nearest_wrong_class
from baselines.cf_k import CFk
from baselines.common import random_wrong_labels
from baselines.finetune import Finetune
from baselines.grad_ascent import GradAscent
from baselines.l1_sparse import L1Sparse
from baselines.neggrad_plus import CycledPairs, NegGradPlus
from baselines.random_label import RandomLabel
from baselines.salun import SalUn
from unlearn_bench.data import Digits
from unlearn_bench.data.batches import Normalizer, Subset
from unlearn_bench.errors import ConfigError, RegimeError
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.methods.hparams import check_method_config
from unlearn_bench.models import mlp
from unlearn_bench.run import models as run_models
from unlearn_bench.run import pipeline

FORGET = 3
CONF = Path(__file__).resolve().parents[1] / "conf" / "method"
REGIMES = {"retrain": Regime.FULL, "finetune": Regime.FULL, "grad_ascent": Regime.FORGET_ONLY,
           "neggrad_plus": Regime.FULL, "random_label": Regime.FULL, "boundary_shrink": Regime.FORGET_ONLY,
           "l1_sparse": Regime.FULL, "salun": Regime.FULL}


@pytest.fixture(scope="module")
def digits():
    """Digits split into retain/forget subsets on the CPU and a small MLP trained on all of it."""
    d = Digits().load()
    norm = Normalizer(d.mean, d.std, "cpu")
    f = d.train_y == FORGET
    sets = {"retain": Subset(d.train_x[~f], d.train_y[~f], norm),
            "forget": Subset(d.train_x[f], d.train_y[f], norm)}
    sets["unseen"] = sets["forget"].sample(10, 0)
    torch.manual_seed(0)
    model = mlp(d.in_shape, 10, hidden=(64,))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = norm(d.train_x), d.train_y
    for _ in range(150):  # full-batch: a few hundred ms, ~100% train accuracy
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), sets


class Recording(UnlearnData):
    """UnlearnData that remembers which sets a method read."""

    def _get(self, name):
        self.__dict__.setdefault("read", set()).add(name)
        return super()._get(name)


def make_data(sets, regime=Regime.FULL, cls=UnlearnData):
    allowed = {Regime.FULL: ("retain", "forget", "unseen"), Regime.FORGET_ONLY: ("forget", "unseen"),
               Regime.ZERO_SHOT: ("unseen",)}[regime]
    return cls(regime, "m", 10, [FORGET], "cpu", 0, None, _sets={k: sets[k] for k in allowed}, progress=False)


def ce(model, subset):
    with torch.no_grad():
        x, y = subset.tensors()
        return F.cross_entropy(model(x), y).item()


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_retrain_oracle_trains_on_retain_only_from_a_fresh_init(digits_cfg, tmp_path, monkeypatch):
    calls, real_fit = [], run_models.fit

    def recording_fit(model, batches, *a, **k):
        labels = torch.cat([y for _, y in batches])
        calls.append({"model": model, "init": params(model), "labels": set(labels.tolist())})
        return real_fit(model, batches, *a, **k)

    monkeypatch.setattr(run_models, "fit", recording_fit)
    cfg = digits_cfg("method=retrain", f"forget.classes=[{FORGET}]", "seed=5", "train.epochs=3",
                     f"cache_dir={tmp_path / 'cache'}")  # a private cache: both models train here
    m = pipeline.run(cfg, tmp_path / "a")
    assert len(calls) == 2  # the original, then the oracle
    (orig, oracle) = calls
    assert FORGET in orig["labels"] and FORGET not in oracle["labels"]
    assert len(oracle["labels"]) == 9
    for stage in ("init", "final"):
        a = orig["init"] if stage == "init" else params(orig["model"])
        b = oracle["init"] if stage == "init" else params(oracle["model"])
        same = [k for k in a if torch.equal(a[k], b[k]) or (a[k] == b[k]).float().mean() > 0.01]
        assert not same, f"{stage}: oracle shares {same} with the original"
    assert m["status"] == "ok" and m["retrain/cache_hit"] is False and m["retrain/train_s"] > 0
    again = pipeline.run(cfg, tmp_path / "b")
    assert len(calls) == 2  # nothing retrained
    assert again["retrain/cache_hit"] is True and again["retrain/train_s"] == m["retrain/train_s"]


@pytest.mark.parametrize("method", [Finetune(epochs=2), L1Sparse(epochs=2)], ids=["finetune", "l1_sparse"])
def test_finetuning_methods_never_read_the_forget_set(digits, method):
    model, sets = digits
    data = make_data(sets, cls=Recording)
    before = params(model)
    out = method.unlearn(copy.deepcopy(model), data)
    assert data.read == {"retain"}
    assert any(not torch.equal(before[k], v) for k, v in params(out).items())
    assert len(method.curve) == 2 and method.extra_metrics["m/final_loss"] == method.curve[-1]


def test_l1_penalty_shrinks_the_weights(digits):
    model, sets = digits

    def norm(m):
        return sum(p.abs().sum().item() for p in m.parameters())

    plain = Finetune(epochs=2).unlearn(copy.deepcopy(model), make_data(sets))
    sparse = L1Sparse(epochs=2, gamma=1e-3).unlearn(copy.deepcopy(model), make_data(sets))
    assert norm(sparse) < norm(plain)


def test_grad_ascent_raises_the_forget_loss(digits):
    model, sets = digits
    data = make_data(sets, Regime.FORGET_ONLY)
    # batch 32, no weight decay (grad_ascent_small_batch): enough steps on this small D_f to move it
    out = GradAscent(epochs=3, lr=1e-3, batch_size=32, weight_decay=0.0, augment=False).unlearn(
        copy.deepcopy(model), data)
    assert ce(out, sets["forget"]) > ce(model, sets["forget"]) + 0.05


def test_neggrad_plus_with_alpha_one_is_finetuning_and_below_one_ascends(digits):
    model, sets = digits
    # the same optimiser and batches on both sides (the methods' own defaults differ)
    opt = dict(epochs=2, batch_size=128, momentum=0.9, weight_decay=5e-4)
    ft = Finetune(**opt, augment=False).unlearn(copy.deepcopy(model), make_data(sets))
    ng1 = NegGradPlus(alpha=1.0, **opt).unlearn(copy.deepcopy(model), make_data(sets))
    for k, v in params(ft).items():
        torch.testing.assert_close(params(ng1)[k], v)
    ng = NegGradPlus(alpha=0.9, **opt).unlearn(copy.deepcopy(model), make_data(sets))
    assert ce(ng, sets["forget"]) > ce(ft, sets["forget"]) + 0.5


def test_salun_leaves_unmasked_weights_bit_identical(digits):
    model, sets = digits
    method = SalUn(epochs=2, lr=0.05, momentum=0.9, weight_decay=5e-3)
    out = method.unlearn(copy.deepcopy(model), make_data(sets))
    # the mask, recomputed here: the top half of |grad CE(D_f)| over every parameter
    probe = copy.deepcopy(model)
    x, y = sets["forget"].tensors()
    F.cross_entropy(probe(x), y, reduction="sum").backward()
    grads = {n: p.grad.abs() for n, p in probe.named_parameters()}
    inside = torch.cat([grads[n][m] for n, m in method.masks.items()])
    outside = torch.cat([grads[n][~m] for n, m in method.masks.items()])
    assert inside.numel() == round(0.5 * (inside.numel() + outside.numel()))
    assert inside.min() >= outside.max() * (1 - 1e-5)
    before, after = dict(model.named_parameters()), dict(out.named_parameters())
    moved = 0
    for n, m in method.masks.items():
        assert torch.equal(after[n][~m], before[n][~m]), f"{n}: weights outside the mask moved"
        moved += int((after[n][m] != before[n][m]).sum())
    assert moved > 0.5 * inside.numel()  # and the masked ones did train
    assert ce(out, sets["forget"]) > ce(model, sets["forget"])


def test_boundary_shrink_targets_are_wrong_classes(digits):
    model, sets = digits
    f = sets["forget"]
    x, y = f.tensors()
    mean, std = f.normalize.mean, f.normalize.std
    target = nearest_wrong_class(model, x, y, 0.1 / std, (0 - mean) / std, (1 - mean) / std)
    assert (target != y).all() and target.min() >= 0 and target.max() < 10


def accuracy(model, subset):
    with torch.no_grad():
        x, y = subset.tensors()
        return (model(x).argmax(1) == y).float().mean().item()


# boundary_shrink_exclude_true's targets (never the true class), batch 32: enough steps on digits' small D_f
@pytest.mark.parametrize("method, regime", [
    (BoundaryShrink(epochs=3, lr=1e-3, batch_size=32, exclude_true=True), Regime.FORGET_ONLY),
    (RandomLabel(epochs=5), Regime.FULL)], ids=["boundary_shrink", "random_label"])
def test_relabelling_methods_lower_forget_accuracy(digits, method, regime, tmp_path):
    model, sets = digits
    out = method.unlearn(copy.deepcopy(model), make_data(sets, regime))
    assert accuracy(model, sets["forget"]) > 0.95 and accuracy(out, sets["forget"]) < 0.5
    method.write_artifacts(tmp_path, model, out, None)
    assert json.loads((tmp_path / "loss_curve.json").read_text())["per_epoch_loss"] == method.curve


@pytest.mark.parametrize("label", sorted(set(REGIMES) - {"retrain"}))
def test_bad_hyperparameters_are_refused_in_one_line(label):
    """From the class's declarations alone: on the configuration, and when the class is built directly."""
    node = OmegaConf.load(CONF / f"{label}.yaml")
    with pytest.raises(ConfigError, match="lr=-1.0 must be > 0; fix: ") as e:
        check_method_config({**OmegaConf.to_container(node), "lr": -1.0})
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="lr=-1.0 must be > 0; fix: "):
        get_class(node._target_)(lr=-1.0)


def test_helpers_pair_and_relabel():
    pairs = CycledPairs(range(5), [10, 11])  # NegGrad+'s pairing
    assert len(pairs) == 5 and list(pairs) == [(0, 10), (1, 11), (2, 10), (3, 11), (4, 10)]
    y = torch.full((2000,), FORGET)
    r = random_wrong_labels(y, 10, [FORGET, 7], seed=0)
    assert set(r.tolist()) == set(range(10)) - {FORGET, 7}
    assert torch.equal(r, random_wrong_labels(y, 10, [FORGET, 7], seed=0))


@pytest.mark.parametrize("label", sorted(REGIMES))
def test_regime_is_declared_and_enforced(digits, label):
    model, sets = digits
    method = instantiate(OmegaConf.load(CONF / f"{label}.yaml"))
    assert method.regime == REGIMES[label]
    narrower = {Regime.FULL: Regime.FORGET_ONLY, Regime.FORGET_ONLY: Regime.ZERO_SHOT}[method.regime]
    with pytest.raises(RegimeError):
        method.unlearn(copy.deepcopy(model), make_data(sets, narrower))


@pytest.mark.parametrize("reinit", [False, True], ids=["cf_k", "eu_k"])
def test_cf_k_and_eu_k_train_the_last_k_layers_alone(digits, reinit):
    model, sets = digits
    before = params(model)
    method = CFk(k=1, reinit=reinit, epochs=2, lr=0.05, batch_size=128)
    method.validate(model, {})
    out = method.unlearn(copy.deepcopy(model), make_data(sets))
    changed = {k for k, v in params(out).items() if not torch.equal(v, before[k])}
    assert changed == {"head.weight", "head.bias"} and all(p.requires_grad for p in out.parameters())
    if reinit:  # a classifier redrawn and trained on D_r alone never predicts the forgotten class
        assert accuracy(out, sets["forget"]) < 0.05 and accuracy(out, sets["retain"]) > 0.9
    with pytest.raises(ConfigError, match="method.k=3 but the model has 2 Linear/Conv2d layers; fix: set "
                                          "method.k<=2"):
        CFk(k=3).validate(model, {})
