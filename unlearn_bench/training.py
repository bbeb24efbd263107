"""One Lightning loop for everything that trains: the original model, the retrain oracle and every
training-based unlearning method. A method supplies ``loss_fn(model, batch) -> loss``; the loop supplies
the device, precision (by default bf16 autocast on GPU, fp32 on CPU; see ``precision_scope``), progress bar,
loss curve and divergence guard.

The step is written out (Lightning's manual optimisation) rather than run through the automatic closure
machinery: for small models on CPU the per-step hook and closure layers cost as much as the model itself
(see ``benchmarks/bench_epoch.py``). For the same reason the step calls the raw optimizer and
``loss.backward()`` (the precisions offered, fp32 and bf16 autocast, need no loss scaling), counts its own
steps for ``max_steps``, and hands the loss to Lightning's logging only when a logger is attached. Nothing in
the step reads a value back to the host.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from torch import nn

from unlearn_bench.errors import Diverged
from unlearn_bench.interrupts import no_keyboard_interrupt

for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*Your `IterableDataset` has `__len__` defined.*")
# lightning 2.6 on torch >= 2.10 warns on every fit that its own pytree helper uses a deprecated check
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")

LossFn = Callable[[nn.Module, tuple], torch.Tensor]
PROGRESS_INTERVAL_S = 0.25  # a bar redrawn every step costs more than a small model's step on CPU
LOG_PROGRESS_INTERVAL_S = 30.0  # stdout is a file or pipe (a cluster log): a line every 30 s, not every redraw
_NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed"}  # the `precision` setting -> Lightning's name
_precision: ContextVar[str | None] = ContextVar("unlearn_bench_precision", default=None)
NORM_STATS = ("update", "frozen")
_norm_stats: ContextVar[str] = ContextVar("unlearn_bench_norm_stats", default="update")


def resolve_precision(setting: str, device: str) -> str:
    """Lightning's precision for the ``precision`` setting: ``auto`` is bf16 autocast on CUDA, fp32 elsewhere."""
    if str(setting) == "auto":
        return PRECISIONS["bf16" if device.startswith("cuda") else "32"]
    return PRECISIONS[str(setting)]


@contextmanager
def precision_scope(precision: str):
    """Every ``fit`` inside trains at ``precision`` (a Lightning name), whichever method calls it: a run sets
    its precision once instead of threading it through every baseline."""
    token = _precision.set(precision)
    try:
        yield
    finally:
        _precision.reset(token)


@contextmanager
def norm_stats_scope(mode: str):
    """Inside, every ``fit`` either updates BatchNorm running statistics as train mode does (``update``) or
    keeps them as they were (``frozen``: normalisation layers run in eval mode during the steps). A run
    sets it around its unlearning step only, so a method's forgetting can be told apart from statistics
    re-estimated on forget-only or noisy batches."""
    if mode not in NORM_STATS:
        raise ValueError(f"norm_stats={mode!r} is not one of {NORM_STATS}")
    token = _norm_stats.set(mode)
    try:
        yield
    finally:
        _norm_stats.reset(token)


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
                 after_step: Callable[[nn.Module], None] | None = None, max_steps: int = -1):
        super().__init__()
        self.model, self.loss_fn, self.optimizer_factory = model, loss_fn, optimizer
        self.schedule, self.after_step, self.max_steps = schedule, after_step, max_steps
        self.automatic_optimization = False
        self.curve: list[float] = []
        self.steps = 0
        self._frozen = ([m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
                        if _norm_stats.get() == "frozen" else [])
        self._sum = None
        self._count = 0
        self._opt = self._sched = None

    def training_step(self, batch, batch_idx):
        if self._opt is None:  # look the optimizer up once, not per step
            self._opt = self.optimizers(use_pl_optimizer=False)
        for m in self._frozen:  # Lightning puts the model in train mode at every epoch start
            m.eval()
        loss = self.loss_fn(self.model, batch)
        self._opt.zero_grad(set_to_none=True)
        loss.backward()
        self._opt.step()
        if self._sched is not None:
            self._sched.step()
        if self.after_step is not None:
            self.after_step(self.model)
        self.steps += 1
        if self.steps == self.max_steps:  # Lightning's own count (global_step) follows its optimizer wrapper
            self.trainer.should_stop = True
        d = loss.detach().float()
        self._sum = d if self._sum is None else self._sum + d
        self._count += 1

    def on_train_epoch_end(self):
        if self._count:
            mean = float(self._sum) / self._count  # the one host sync of the epoch
            self.curve.append(mean)
            if self.trainer.loggers:  # Lightning's logging machinery costs ~1 ms per call; the bar reads the curve
                self.log("train_loss", mean)
            if not math.isfinite(mean):
                raise Diverged(f"loss became {mean} in epoch {len(self.curve)}")
        self._sum, self._count = None, 0

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.model.parameters())
        self._opt = None
        if self.schedule is None:
            return opt
        # stepped by training_step: Lightning leaves schedulers alone under manual optimisation
        self._sched = torch.optim.lr_scheduler.LambdaLR(opt, self.schedule)
        return opt


class _SparseTqdm(Tqdm):
    """Lightning's tqdm for logs: epoch starts and ends redraw too, so every draw but the final one (at
    close) waits ``interval`` seconds after the previous one."""

    interval = LOG_PROGRESS_INTERVAL_S

    def refresh(self, nolock=False, lock_args=None):
        now = time.monotonic()
        if now - getattr(self, "_drawn", -math.inf) < self.interval:
            return None
        self._drawn = now
        return super().refresh(nolock=nolock, lock_args=lock_args)


class ThrottledProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, redrawn at most every ``interval`` seconds (and on an epoch's last batch; in a
    log, with ``interval`` >= 1 s, epoch boundaries wait for the interval as well)."""

    def __init__(self, interval: float = PROGRESS_INTERVAL_S):
        super().__init__(refresh_rate=1)
        self.interval, self._last = interval, 0.0

    def init_train_tqdm(self):
        bar = super().init_train_tqdm()
        if self.interval >= 1.0:  # a log file: the few draws that remain are worth the interval
            bar.__class__, bar.interval = _SparseTqdm, self.interval
        return bar

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = time.monotonic()
        if now - self._last >= self.interval or batch_idx + 1 == self.total_train_batches:
            self._last = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        curve = getattr(pl_module, "curve", None)
        if curve:
            items["train_loss"] = f"{curve[-1]:.3g}"
        return items


def make_trainer(device: str, max_epochs: int | None = None, max_steps: int = -1, logger=False,
                 progress: bool = True, callbacks=None) -> L.Trainer:
    """A single-device Trainer with cuDNN autotuning and TF32 on CUDA, at the enclosing ``precision_scope``'s
    precision (default: bf16 autocast on CUDA, fp32 on CPU)."""
    cuda = device.startswith("cuda")
    precision = _precision.get() or resolve_precision("auto", device)
    callbacks = list(callbacks or [])
    if progress:
        callbacks.append(ThrottledProgressBar(PROGRESS_INTERVAL_S if _is_terminal() else LOG_PROGRESS_INTERVAL_S))
    if cuda:  # fp32 leftovers outside autocast (e.g. the optimizer's math) may use TF32 tensor cores
        torch.set_float32_matmul_precision("high")
    trainer = L.Trainer(
        accelerator="gpu" if cuda else "cpu", devices=[_index(device)] if cuda else 1,
        precision=precision, benchmark=cuda,
        max_epochs=max_epochs if max_epochs is not None else (-1 if max_steps > 0 else 1), max_steps=max_steps,
        logger=logger, enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
        enable_progress_bar=progress, callbacks=callbacks, log_every_n_steps=1 if logger else 50,
    )
    # Signals stay with the process (unlearn_bench.interrupts): Lightning's SIGTERM handler would end fit with
    # SystemExit, status 0, and under Slurm it bypasses SIGTERM and requeues on SIGUSR1 behind submitit's back
    trainer._signal_connector.register_signal_handlers = lambda: None
    return trainer


def _is_terminal() -> bool:
    try:
        return sys.stdout.isatty()  # where Lightning's tqdm bar writes
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


def _index(device: str) -> int:
    return int(device.split(":")[1]) if ":" in device else 0


@lru_cache(maxsize=1)
def _has_gpu() -> bool:
    return torch.cuda.device_count() > 0


@contextmanager
def plain_cuda_check():
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 at import (so forks stay CUDA-safe). On a machine
    without a GPU every ``torch.cuda.is_available()`` then loads NVML again, and Adam/AdamW ask on every
    ``step()``: 0.2-2 ms per step, more than a small model's whole step. Without a GPU nothing can be
    poisoned, so the runtime's own (cached) check is used while training."""
    if os.environ.get(_NVML_CHECK) != "1" or _has_gpu():
        yield
        return
    os.environ[_NVML_CHECK] = "0"
    try:
        yield
    finally:
        os.environ[_NVML_CHECK] = "1"


def fit(model: nn.Module, batches: Iterable, loss_fn: LossFn, optimizer: Callable, device: str,
        epochs: int | None = None, max_steps: int = -1, schedule: str = "none",
        after_step: Callable | None = None, logger=False, progress: bool = True) -> list[float]:
    """Train ``model`` in place; returns the per-epoch mean loss. Raises ``Diverged`` on NaN/inf."""
    total = max_steps if max_steps > 0 else (epochs or 1) * len(batches)
    module = StepModule(model, loss_fn, optimizer,
                        cosine_schedule(total) if schedule == "cosine" else None, after_step, max_steps)
    trainer = make_trainer(device, epochs, max_steps, logger, progress)
    model.train()
    with plain_cuda_check(), no_keyboard_interrupt():  # Ctrl-C outside the CLI stays a KeyboardInterrupt
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
