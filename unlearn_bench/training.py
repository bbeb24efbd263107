"""One Lightning loop for everything that trains: the original model, the retrain oracle and every
training-based unlearning method. A method supplies ``loss_fn(model, batch) -> loss``; the loop supplies
the device, precision (bf16 autocast on GPU, fp32 on CPU), progress bar, loss curve and divergence guard.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Callable, Iterable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from unlearn_bench.errors import Diverged

for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*Your `IterableDataset` has `__len__` defined.*")

LossFn = Callable[[nn.Module, tuple], torch.Tensor]


def cross_entropy(label_smoothing: float = 0.0) -> LossFn:
    def loss(model, batch):
        x, y = batch
        return F.cross_entropy(model(x), y, label_smoothing=label_smoothing)
    return loss


def cosine_schedule(total_steps: int, warmup: int = 0):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup))))
    return factor


class StepModule(L.LightningModule):
    """Minimises ``loss_fn(model, batch)``; keeps a per-epoch loss curve without a per-step host sync."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, optimizer: Callable, schedule: Callable | None = None,
                 after_step: Callable[[nn.Module], None] | None = None):
        super().__init__()
        self.model, self.loss_fn, self.optimizer_factory = model, loss_fn, optimizer
        self.schedule, self.after_step = schedule, after_step
        self.curve: list[float] = []
        self._sum = None
        self._count = 0

    def training_step(self, batch, batch_idx):
        loss = self.loss_fn(self.model, batch)
        d = loss.detach().float()
        self._sum = d if self._sum is None else self._sum + d
        self._count += 1
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.after_step is not None:
            self.after_step(self.model)

    def on_train_epoch_end(self):
        if self._count:
            mean = float(self._sum) / self._count
            self.curve.append(mean)
            self.log("train_loss", mean, prog_bar=True)
            if not math.isfinite(mean):
                raise Diverged(f"loss became {mean} in epoch {len(self.curve)}")
        self._sum, self._count = None, 0

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.model.parameters())
        if self.schedule is None:
            return opt
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def make_trainer(device: str, max_epochs: int | None = None, max_steps: int = -1, logger=False,
                 progress: bool = True, callbacks=None) -> L.Trainer:
    cuda = device.startswith("cuda")
    return L.Trainer(
        accelerator="gpu" if cuda else "cpu", devices=1, precision="bf16-mixed" if cuda else "32-true",
        max_epochs=max_epochs if max_epochs is not None else (-1 if max_steps > 0 else 1), max_steps=max_steps,
        logger=logger, enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
        enable_progress_bar=progress, callbacks=callbacks or [], log_every_n_steps=1 if logger else 50,
    )


def fit(model: nn.Module, batches: Iterable, loss_fn: LossFn, optimizer: Callable, device: str,
        epochs: int | None = None, max_steps: int = -1, schedule: str = "none",
        after_step: Callable | None = None, logger=False, progress: bool = True) -> list[float]:
    """Train ``model`` in place; returns the per-epoch mean loss. Raises ``Diverged`` on NaN/inf."""
    total = max_steps if max_steps > 0 else (epochs or 1) * len(batches)
    module = StepModule(model, loss_fn, optimizer,
                        cosine_schedule(total) if schedule == "cosine" else None, after_step)
    trainer = make_trainer(device, epochs, max_steps, logger, progress)
    model.train()
    trainer.fit(module, train_dataloaders=batches)
    model.eval()
    if module._count:  # a max_steps stop can end mid-epoch
        module.on_train_epoch_end()
    check_finite(model)
    return module.curve


def check_finite(model: nn.Module) -> None:
    for name, p in model.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise Diverged(f"parameter {name} holds NaN/inf")
