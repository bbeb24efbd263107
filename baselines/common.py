"""Pieces the training-based baselines share: SGD factory, batches over two sets at once, the
random-label epochs of RL and SalUn (OPTML-Group's plumbing and the fixed-label union), the augmentation
rule, the declarations of the hyperparameters they share, and a ``Method`` base that trains through
``UnlearnData.fit`` and keeps the loss curve."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

import torch
from torch import nn

from unlearn_bench.data.batches import Subset
from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Method, UnlearnData
from unlearn_bench.methods.hparams import HP, Bool, Choice, Float, Int

# ``auto``: augment exactly when the original model was trained with augmentation (``resolve_augment``)
AUGMENT = Bool(also=("auto",))


def sgd(lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> Callable:
    """Optimizer factory for ``fit``: the unlearning papers in this suite all use SGD with momentum."""
    return partial(torch.optim.SGD, lr=lr, momentum=momentum, weight_decay=weight_decay)


def random_wrong_labels(y: torch.Tensor, num_classes: int, forget_classes: list[int],
                        seed: int) -> torch.Tensor:
    """One uniformly drawn label per sample from the retain classes, so it is never the true class
    (nor another forgotten class). Seeded on the CPU so runs repeat across devices."""
    keep = torch.tensor([c for c in range(num_classes) if c not in set(forget_classes)], dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randint(0, len(keep), (len(y),), generator=g)
    return keep[pick].to(y.device)


def relabelled_union(retain: Subset, forget: Subset, num_classes: int, forget_classes: list[int],
                     seed: int) -> Subset:
    """D_r with its labels plus D_f with fixed random wrong labels, as one set (the "RL" training set of
    Golatkar et al. 2020 / Fan et al. ICLR'24, SalUn): shuffling then mixes both in every batch."""
    y_f = random_wrong_labels(forget.y, num_classes, forget_classes, seed)
    return Subset(torch.cat([retain.x, forget.x]), torch.cat([retain.y, y_f]), retain.normalize,
                  retain.augment, retain.channels_last)


RELABEL_PLUMBING = ("auto", "forget_then_retain", "union_per_epoch", "union_retain_once")
RELABEL = Choice(*RELABEL_PLUMBING)


def sgd_hparams(lr: tuple[float, float], epochs: tuple[int, int] = (1, 10)) -> dict[str, HP]:
    """The hyperparameters of one SGD optimiser and its loop, with the search ranges of ``lr`` (log scale)
    and ``epochs``; ``lr`` comes before ``epochs``, the order the sweeps have always sampled them in."""
    return {"lr": Float(gt=0).tune(*lr, log=True), "epochs": Int(ge=1).tune(*epochs),
            "momentum": Float(ge=0), "weight_decay": Float(ge=0), "batch_size": Int(ge=1)}


def resolve_relabel(setting: str, num_classes: int) -> str:
    """``auto``: the branch OPTML-Group's RL code takes for the data set (Unlearn-Saliency@a6e89fd
    Classification/unlearn/RL.py:51 and :109): cifar100 / TinyImagenet (100 and 200 classes) train on a
    shuffled union, cifar10 / svhn (10 classes) run a D_f pass then a D_r pass. Read here as a rule on
    the class count: more than 10 classes -> ``union_per_epoch``, else ``forget_then_retain``."""
    if setting not in RELABEL_PLUMBING:
        raise ConfigError(f"method.relabel={setting!r} is not one of {RELABEL_PLUMBING}; fix: e.g. auto")
    if setting != "auto":
        return setting
    return "union_per_epoch" if num_classes > 10 else "forget_then_retain"


def resolve_augment(setting, data: UnlearnData) -> bool:
    """``auto``: augment D_r / D_f batches exactly when the original model was trained with augmentation.
    OPTML-Group's unlearning loaders reuse the training set's transform (random crop + flip unless
    ``--no_aug``; Unlearn-Saliency@a6e89fd Classification/dataset.py:542-555 and :569)."""
    if str(setting) == "auto":
        return bool(getattr(data.recipe, "augment", False)) if data.recipe is not None else False
    return bool(setting)


class ForgetThenRetain:
    """One epoch of OPTML-Group's random-label step for 10-class data (Unlearn-Saliency@a6e89fd
    Classification/unlearn/RL.py:123-159): every batch of D_f gets labels drawn uniformly from ALL
    classes, afresh for each batch (so a sample may draw its true class), then D_r follows with its own
    labels. Both loaders reshuffle every epoch. Draws come from one seeded CPU generator."""

    def __init__(self, forget: Iterable, retain: Iterable, num_classes: int, seed: int):
        self.forget, self.retain, self.num_classes = forget, retain, num_classes
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.forget) + len(self.retain)

    def __iter__(self):
        for x, y in self.forget:
            yield x, torch.randint(0, self.num_classes, y.shape, generator=self.generator).to(y.device)
        yield from self.retain


class RelabelledUnionPerEpoch:
    """One epoch of OPTML-Group's random-label step for 100/200-class data (Unlearn-Saliency@a6e89fd
    Classification/unlearn/RL.py:51-59): at every epoch D_f gets one label per sample drawn uniformly from
    ALL classes, and D_f + D_r are concatenated and shuffled together."""

    def __init__(self, retain: Subset, forget: Subset, num_classes: int, batch_size: int, seed: int,
                 augment: bool = False):
        self.retain, self.forget, self.num_classes = retain, forget, num_classes
        self.batch_size, self.augment = int(batch_size), augment
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-(len(self.forget) + len(self.retain)) // self.batch_size)

    def __iter__(self):
        y_f = torch.randint(0, self.num_classes, (len(self.forget),), generator=self.generator)
        union = Subset(torch.cat([self.forget.x, self.retain.x]), torch.cat([y_f.to(self.forget.y.device),
                       self.retain.y]), self.retain.normalize, self.retain.augment, self.retain.channels_last)
        shuffle_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))
        yield from union.batches(self.batch_size, shuffle=True, seed=shuffle_seed, augment=self.augment)


def random_label_batches(data: UnlearnData, relabel: str, batch_size: int, augment: bool):
    """The batches of a random-label epoch (RL, and SalUn's update) for the resolved ``relabel`` plumbing;
    ``union_retain_once`` is ``relabelled_union`` shuffled (labels drawn once, from the retain classes)."""
    retain, forget = data.retain, data.forget
    plumbing = resolve_relabel(relabel, data.num_classes)
    if plumbing == "forget_then_retain":
        return ForgetThenRetain(forget.batches(batch_size, shuffle=True, seed=data.seed, augment=augment),
                                retain.batches(batch_size, shuffle=True, seed=data.seed, augment=augment),
                                data.num_classes, data.seed)
    if plumbing == "union_per_epoch":
        return RelabelledUnionPerEpoch(retain, forget, data.num_classes, batch_size, data.seed, augment)
    union = relabelled_union(retain, forget, data.num_classes, data.forget_classes, data.seed)
    return union.batches(batch_size, shuffle=True, seed=data.seed, augment=augment)


class TrainingMethod(Method):
    """A method whose update is a training loop: ``train`` runs ``fit`` and records the loss curve as
    ``<label>/final_loss`` and ``<label>/steps`` in ``extra_metrics``; ``loss_curve.json`` is written
    into the run directory."""

    def __init__(self) -> None:
        super().__init__()
        self.curve: list[float] = []

    def train(self, model: nn.Module, batches, loss_fn, data: UnlearnData, epochs: int, lr: float,
              momentum: float, weight_decay: float, after_step: Callable | None = None) -> list[float]:
        self.curve = data.fit(model, batches, loss_fn, sgd(lr, momentum, weight_decay), epochs=epochs,
                              after_step=after_step)
        self.extra_metrics[f"{data.method}/final_loss"] = self.curve[-1] if self.curve else math.nan
        self.extra_metrics[f"{data.method}/steps"] = int(epochs) * len(batches)
        return self.curve

    def write_artifacts(self, run_dir: Path, original: nn.Module, unlearned: nn.Module,
                        data: UnlearnData) -> None:
        (Path(run_dir) / "loss_curve.json").write_text(json.dumps({"per_epoch_loss": self.curve}))


class SGDMethod(TrainingMethod):
    """A training method driven by one SGD optimiser, whose hyperparameters subclasses declare with
    ``sgd_hparams``."""

    def __init__(self, epochs: int, lr: float, momentum: float, weight_decay: float, batch_size: int) -> None:
        super().__init__()
        self.epochs, self.lr, self.momentum = epochs, lr, momentum
        self.weight_decay, self.batch_size = weight_decay, batch_size

    def train_sgd(self, model: nn.Module, batches, loss_fn, data: UnlearnData,
                  after_step=None) -> list[float]:
        return self.train(model, batches, loss_fn, data, self.epochs, self.lr, self.momentum,
                          self.weight_decay, after_step)

