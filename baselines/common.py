"""Pieces the training-based baselines share: SGD factory, batches over two sets at once, the
random-relabelled union used by RL and SalUn, and a ``Method`` base that trains through
``unlearn_bench.training.fit`` and keeps the loss curve."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

import torch
from torch import nn

from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Method, Subset, UnlearnData
from unlearn_bench.training import fit


def sgd(lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> Callable:
    """Optimizer factory for ``fit``: the unlearning papers in this suite all use SGD with momentum."""
    return partial(torch.optim.SGD, lr=lr, momentum=momentum, weight_decay=weight_decay)


class PairedBatches:
    """Batches of ``primary`` each paired with a batch of ``secondary``, cycling (and reshuffling)
    ``secondary`` when it runs out: one epoch is one pass over ``primary``. Yields ``(a, b)`` where each
    is an ``(x, y)`` batch. Lightning's fit takes any iterable with ``__len__``."""

    def __init__(self, primary: Iterable, secondary: Iterable):
        self.primary, self.secondary = primary, secondary
        self._it = None

    def __len__(self) -> int:
        return len(self.primary)

    def _next_secondary(self):
        if self._it is None:
            self._it = iter(self.secondary)
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self.secondary)
            return next(self._it)

    def __iter__(self):
        for a in self.primary:
            yield a, self._next_secondary()


def random_wrong_labels(y: torch.Tensor, num_classes: int, forget_classes: list[int], seed: int) -> torch.Tensor:
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


class TrainingMethod(Method):
    """A method whose update is a training loop: ``train`` runs ``fit`` and records the loss curve as
    ``<label>/final_loss`` and ``<label>/steps`` in ``extra_metrics``; ``loss_curve.json`` is written
    into the run directory."""

    def __init__(self) -> None:
        super().__init__()
        self.curve: list[float] = []

    def train(self, model: nn.Module, batches, loss_fn, data: UnlearnData, epochs: int, lr: float,
              momentum: float, weight_decay: float, after_step: Callable | None = None) -> list[float]:
        self.curve = fit(model, batches, loss_fn, sgd(lr, momentum, weight_decay), data.device, epochs=epochs,
                         after_step=after_step, logger=data.logger, progress=data.progress)
        self.extra_metrics[f"{data.method}/final_loss"] = self.curve[-1] if self.curve else math.nan
        self.extra_metrics[f"{data.method}/steps"] = int(epochs) * len(batches)
        return self.curve

    def write_artifacts(self, run_dir: Path, original: nn.Module, unlearned: nn.Module, data: UnlearnData) -> None:
        (Path(run_dir) / "loss_curve.json").write_text(json.dumps({"per_epoch_loss": self.curve}))


class SGDMethod(TrainingMethod):
    """A training method driven by one SGD optimiser: the shared hyperparameters and their checks."""

    def __init__(self, epochs: int, lr: float, momentum: float, weight_decay: float, batch_size: int) -> None:
        super().__init__()
        self.epochs, self.lr, self.momentum = epochs, lr, momentum
        self.weight_decay, self.batch_size = weight_decay, batch_size

    def validate(self, model, info) -> None:
        check_positive(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size)

    def train_sgd(self, model: nn.Module, batches, loss_fn, data: UnlearnData, after_step=None) -> list[float]:
        return self.train(model, batches, loss_fn, data, self.epochs, self.lr, self.momentum, self.weight_decay,
                          after_step)


def check_positive(**values) -> None:
    """Shared ``validate`` helper: every named hyperparameter must be > 0."""
    for name, v in values.items():
        if not v > 0:
            raise ConfigError(f"method.{name}={v} must be > 0; fix: set method.{name} to a positive value")
