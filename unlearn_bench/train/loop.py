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

A cached model's training (the original, the oracle, reference models) can resume: given a ``Resume``,
``fit`` saves its last finished epoch (weights, optimizer and schedule, loss curve, the batch order's and
torch's random state) at most every ``UNLEARN_BENCH_CHECKPOINT_EVERY_S`` seconds (default 60), and a later
``fit`` with the same ``Resume`` continues from it: a job stopped by a time limit and requeued trains only
the epochs it had left, and ends with the weights an uninterrupted training gives (bit for bit on a CPU; on a
GPU as far as its kernels are deterministic, which cuDNN autotuning and bf16 do not promise).
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

from unlearn_bench.errors import Diverged, one_line
from unlearn_bench.run.cache import Resume  # noqa: F401  (re-exported: fit resumes from it)
from unlearn_bench.run.interrupts import no_keyboard_interrupt

for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*Your `IterableDataset` has `__len__` defined.*")
# lightning 2.6 on torch >= 2.10 warns on every fit that its own pytree helper uses a deprecated check
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")

log = logging.getLogger(__name__)
LossFn = Callable[[nn.Module, tuple], torch.Tensor]
PROGRESS_INTERVAL_S = 0.25  # a bar redrawn every step costs more than a small model's step on CPU
LOG_PROGRESS_INTERVAL_S = 30.0  # stdout is a file or pipe (a cluster log): a line every 30 s, not every redraw
_NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed"}  # the `precision` setting -> Lightning's name
_precision: ContextVar[str | None] = ContextVar("unlearn_bench_precision", default=None)
NORM_STATS = ("update", "frozen")
_norm_stats: ContextVar[str] = ContextVar("unlearn_bench_norm_stats", default="update")
STAGES = {"train": "original", "retrain": "oracle"}  # job names -> the stage a progress bar names


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
                 after_step: Callable[[nn.Module], None] | None = None, max_steps: int = -1,
                 saver: Callable[[StepModule], None] | None = None, restored: dict | None = None):
        super().__init__()
        self.model, self.loss_fn, self.optimizer_factory = model, loss_fn, optimizer
        self.schedule, self.after_step, self.max_steps = schedule, after_step, max_steps
        self.automatic_optimization = False
        self.saver, self._restored = saver, restored
        self.curve: list[float] = list(restored["curve"]) if restored else []
        self.steps = int(restored["steps"]) if restored else 0
        self.epochs_done = int(restored["epoch"]) if restored else 0
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
            self.epochs_done += 1
            if self.saver is not None:
                self.saver(self)
        self._sum, self._count = None, 0

    def training_state(self, device: str = "cpu") -> dict:
        """Everything the next epoch depends on (``Resume`` keeps it between processes): weights on the CPU,
        the optimizer's state as it is, the random state of torch and of the training's own GPU."""
        opt = self.optimizers(use_pl_optimizer=False)
        return {"epoch": self.epochs_done, "steps": self.steps, "curve": list(self.curve),
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "optimizer": opt.state_dict(),
                "scheduler": self._sched.state_dict() if self._sched is not None else None,
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.startswith("cuda") else None}

    def configure_optimizers(self):
        opt = self.optimizer_factory(self.model.parameters())
        self._opt = None
        if self.schedule is not None:
            # stepped by training_step: Lightning leaves schedulers alone under manual optimisation
            self._sched = torch.optim.lr_scheduler.LambdaLR(opt, self.schedule)
        if self._restored is not None:  # after the scheduler, whose construction resets the learning rate
            opt.load_state_dict(self._restored["optimizer"])
            if self._sched is not None and self._restored.get("scheduler") is not None:
                self._sched.load_state_dict(self._restored["scheduler"])
            self._restored = None
        return opt


class _SparseTqdm(Tqdm):
    """Lightning's tqdm for logs: every draw but the final one (at close) waits ``interval`` seconds after the
    previous one, the first included: a training shorter than the interval leaves one line, its last."""

    interval = LOG_PROGRESS_INTERVAL_S

    def __init__(self, *args, **kwargs):
        self._drawn = time.monotonic()
        super().__init__(*args, **kwargs)

    def refresh(self, nolock=False, lock_args=None):
        now = time.monotonic()
        if now - getattr(self, "_drawn", -math.inf) < self.interval:
            return None
        self._drawn = now
        return super().refresh(nolock=nolock, lock_args=lock_args)

    def close(self):
        self._drawn = -math.inf  # the final state is always drawn
        super().close()


class ThrottledProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, redrawn at most every ``interval`` seconds (and on an epoch's last batch; in a
    log, with ``interval`` >= 1 s, epoch boundaries wait for the interval as well). It names the ``stage``
    (original, oracle, the method) and the epoch out of ``epochs``, counting ``first_epoch`` epochs already
    done by an earlier, resumed training."""

    def __init__(self, interval: float = PROGRESS_INTERVAL_S, stage: str = "training", first_epoch: int = 0,
                 epochs: int | None = None):
        super().__init__(refresh_rate=1)
        self.interval, self._last = interval, 0.0
        self.stage, self.first_epoch, self.epochs = stage, first_epoch, epochs

    def describe(self, epoch: int) -> str:
        i = self.first_epoch + epoch + 1
        return f"{self.stage} epoch {i}/{self.epochs}" if self.epochs else f"{self.stage} epoch {i}"

    def init_train_tqdm(self):
        if self.interval < 1.0:
            bar = super().init_train_tqdm()
            bar.set_description(self.describe(0), refresh=False)
            return bar
        # a log file: the few draws that remain are worth the interval; none before the first one
        bar = _SparseTqdm(desc=self.describe(0), position=2 * self.process_position, disable=self.is_disabled,
                          leave=True, dynamic_ncols=True, file=sys.stdout, smoothing=0, bar_format=self.BAR_FORMAT)
        bar.interval = self.interval
        return bar

    def on_train_epoch_start(self, trainer, *args):
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(self.describe(trainer.current_epoch), refresh=False)

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
                 progress: bool | str = True, callbacks=None, first_epoch: int = 0) -> L.Trainer:
    """A single-device Trainer with cuDNN autotuning and TF32 on CUDA, at the enclosing ``precision_scope``'s
    precision (default: bf16 autocast on CUDA, fp32 on CPU). ``progress``: False, True, or the stage name the
    bar shows (e.g. ``original``)."""
    cuda = device.startswith("cuda")
    precision = _precision.get() or resolve_precision("auto", device)
    callbacks = list(callbacks or [])
    if progress:
        stage = progress if isinstance(progress, str) else "training"
        total = first_epoch + max_epochs if max_epochs is not None and max_epochs > 0 else None
        callbacks.append(ThrottledProgressBar(PROGRESS_INTERVAL_S if _is_terminal() else LOG_PROGRESS_INTERVAL_S,
                                              stage, first_epoch, total))
    if cuda:  # fp32 leftovers outside autocast (e.g. the optimizer's math) may use TF32 tensor cores
        torch.set_float32_matmul_precision("high")
    trainer = L.Trainer(
        accelerator="gpu" if cuda else "cpu", devices=[_index(device)] if cuda else 1,
        precision=precision, benchmark=cuda,
        max_epochs=max_epochs if max_epochs is not None else (-1 if max_steps > 0 else 1), max_steps=max_steps,
        logger=logger, enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
        enable_progress_bar=progress, callbacks=callbacks, log_every_n_steps=1 if logger else 50,
    )
    # Signals stay with the process (unlearn_bench.run.interrupts): Lightning's SIGTERM handler would end fit with
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
        after_step: Callable | None = None, logger=False, progress: bool | str = True,
        resume: Resume | None = None) -> list[float]:
    """Train ``model`` in place; returns the per-epoch mean loss. Raises ``Diverged`` on NaN/inf.
    ``progress`` names the stage on the bar (or True / False); with ``resume``, the training continues from
    the epoch an earlier, stopped call saved there, and saves its own (see the module's docstring)."""
    total = max_steps if max_steps > 0 else (epochs or 1) * len(batches)
    generator = getattr(batches, "generator", None)
    if resume is not None and not isinstance(generator, torch.Generator):
        resume = None  # the batch order could not be replayed: not resumable
    restored = _restore(resume, model, generator, optimizer, device) if resume is not None else None
    if restored is not None:
        log.info("%s: resuming from epoch %d of %s (done; continuing with the next)", resume.label,
                 restored["epoch"], epochs if max_steps <= 0 else f"{max_steps} steps")
    done = int(restored["epoch"]) if restored else 0
    saver = _epoch_saver(resume, generator, epochs, max_steps, device) if resume is not None else None
    module = StepModule(model, loss_fn, optimizer, cosine_schedule(total) if schedule == "cosine" else None,
                        after_step, max_steps, saver, restored)
    left_epochs = None if epochs is None else epochs - done
    left_steps = max_steps - module.steps if max_steps > 0 else max_steps
    model.train()
    if (left_epochs is None or left_epochs > 0) and left_steps != 0:
        trainer = make_trainer(device, left_epochs, left_steps, logger, progress, first_epoch=done)
        with plain_cuda_check(), no_keyboard_interrupt():  # Ctrl-C outside the CLI stays a KeyboardInterrupt
            trainer.fit(module, train_dataloaders=batches)
    model.eval()
    if module._count:  # a max_steps stop can end mid-epoch
        module.on_train_epoch_end()
    check_finite(model)
    return module.curve


def _restore(resume: Resume, model: nn.Module, generator: torch.Generator, optimizer: Callable,
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


def _epoch_saver(resume: Resume, generator: torch.Generator, epochs: int | None, max_steps: int, device: str):
    """Saves the module's state at an epoch end when ``resume.every_s`` has passed since the last save (or
    the start), except after the last epoch: the finished model is the caller's to keep."""
    start = last = time.monotonic()

    def save(module: StepModule) -> None:
        nonlocal last
        final = (max_steps > 0 and module.steps >= max_steps) or \
            (max_steps <= 0 and epochs is not None and module.epochs_done >= epochs)
        if final or time.monotonic() - last < resume.every_s:
            return
        resume.save({**module.training_state(device), "batches_rng": generator.get_state(),
                     "elapsed_s": resume.prior_s + time.monotonic() - start})
        last = time.monotonic()
    return save


def check_finite(model: nn.Module) -> None:
    for name, p in model.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise Diverged(f"parameter {name} holds NaN/inf")
