"""Saving and restoring a training at an epoch boundary, so that a job stopped by a time limit and
requeued trains only the epochs it had left and ends with the weights an uninterrupted training gives.

What the next epoch depends on is kept: weights, optimizer and schedule, loss curve, the batch order's and
torch's random state. ``Resume`` (``unlearn_bench.run.cache``) holds the file; this module decides what
goes in and checks what comes out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from unlearn_bench.errors import one_line
from unlearn_bench.run.cache import Resume

log = logging.getLogger(__name__)


@dataclass
class Trained:
    """What a training has done so far, counting an earlier, resumed one: the per-epoch mean losses,
    optimizer steps and finished epochs."""

    curve: list[float] = field(default_factory=list)
    steps: int = 0
    epochs: int = 0

    @classmethod
    def of(cls, restored: dict | None) -> Trained:
        if restored is None:
            return cls()
        return cls(list(restored["curve"]), int(restored["steps"]), int(restored["epoch"]))


def restore(resume: Resume, model: nn.Module, generator: torch.Generator, optimizer: Callable,
            device: str) -> dict | None:
    """Load ``resume``'s saved epoch into ``model``, the batch order and the random state; None (with a
    warning, the file discarded, model and random state as they were) when there is none or it no longer
    fits: every field is checked before anything is changed."""
    restored = resume.load()
    if restored is None:
        return None
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        restored["epoch"], restored["steps"] = int(restored["epoch"]), int(restored["steps"])
        restored["curve"] = [float(v) for v in restored["curve"]]
        batches_rng, rng = restored["batches_rng"], restored["torch_rng"]
        cuda_rng = restored.get("cuda_rng")
        if not (isinstance(batches_rng, torch.Tensor) and isinstance(rng, torch.Tensor)) or \
                (cuda_rng is not None and not isinstance(cuda_rng, torch.Tensor)):
            raise TypeError("random states are not tensors")
        model.load_state_dict(restored["model"])
        optimizer(model.parameters()).load_state_dict(restored["optimizer"])  # fits this model's parameters
    except Exception as e:  # noqa: BLE001 -- whatever is wrong with the file, the training starts over
        model.load_state_dict(before)
        log.warning("%s: saved epoch does not fit this training (%s); training from the first epoch",
                    resume.label, one_line(e, 160))
        resume.discard()
        return None
    generator.set_state(batches_rng)
    torch.set_rng_state(rng)
    if cuda_rng is not None and device.startswith("cuda"):
        torch.cuda.set_rng_state(cuda_rng, device)
    resume.prior_s, resume.resumed_from = float(restored.get("elapsed_s", 0.0)), restored["epoch"]
    return restored


def load_optimizer(restored: dict, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> None:
    """After the scheduler is built: its construction resets the learning rate the optimizer's state holds."""
    optimizer.load_state_dict(restored["optimizer"])
    if scheduler is not None and restored.get("scheduler") is not None:
        scheduler.load_state_dict(restored["scheduler"])


class EpochSaver:
    """Saves the training at an epoch end when ``resume.every_s`` has passed since the last save (or the
    start), except after the last epoch: the finished model is the caller's to keep."""

    def __init__(self, resume: Resume, generator: torch.Generator, epochs: int | None, max_steps: int,
                 device: str):
        self.resume, self.generator, self.device = resume, generator, device
        self.epochs, self.max_steps = epochs, max_steps
        self.start = self.last = time.monotonic()

    def __call__(self, done: Trained, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None) -> None:
        final = (self.max_steps > 0 and done.steps >= self.max_steps) or \
            (self.max_steps <= 0 and self.epochs is not None and done.epochs >= self.epochs)
        if final or time.monotonic() - self.last < self.resume.every_s:
            return
        cuda = self.device.startswith("cuda")
        self.resume.save({
            "epoch": done.epochs, "steps": done.steps, "curve": list(done.curve),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else None,
            "batches_rng": self.generator.get_state(),
            "elapsed_s": self.resume.prior_s + time.monotonic() - self.start})
        self.last = time.monotonic()
