"""One Lightning loop for everything that trains: the original model, the retrain oracle and every
training-based unlearning method. A method supplies ``loss_fn(model, batch) -> loss``; the loop supplies
the device, precision (by default bf16 autocast on GPU, fp32 on CPU; see ``scopes``), progress line, loss
curve and divergence guard.

The loop is written out on Lightning Fabric's public API (device placement, autocast, backward, loggers)
rather than run by a Trainer: the step is ours anyway (for small models on CPU the Trainer's hook and
closure layers cost as much as the model itself, see ``benchmarks/bench_overhead.py``), and a Trainer
installs its own SIGTERM handler, which a run must not have (``unlearn_bench.run.interrupts``), with no
public switch to leave it out. Fabric installs no signal handler and catches no KeyboardInterrupt: signals
stay with the process. Nothing in the step reads a value back to the host; the epoch's mean loss is the one
host sync of an epoch.

A cached model's training (the original, the oracle, reference models) can resume from a ``Resume``: see
``unlearn_bench.train.resume``. ``fit`` saves its last finished epoch at most every
``UNLEARN_BENCH_CHECKPOINT_EVERY_S`` seconds (default 60) and a later ``fit`` with the same ``Resume`` ends
with the weights an uninterrupted training gives (bit for bit on a CPU; on a GPU as far as its kernels are
deterministic, which cuDNN autotuning and bf16 do not promise).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from lightning.fabric import Fabric
from lightning.fabric.plugins.environments import LightningEnvironment
from torch import nn

from unlearn_bench.errors import Diverged
from unlearn_bench.run.cache import Resume
from unlearn_bench.train.progress import (  # noqa: F401  (re-exported)
    LOG_PROGRESS_INTERVAL_S,
    PROGRESS_INTERVAL_S,
    STAGES,
    EpochBar,
)
from unlearn_bench.train.resume import EpochSaver, Trained, load_optimizer, restore
from unlearn_bench.train.scopes import (  # noqa: F401  (re-exported)
    NORM_STATS,
    PRECISIONS,
    check_norm_stats,
    current_norm_stats,
    current_precision,
    norm_stats_scope,
    precision_scope,
    resolve_precision,
)

__all__ = ["NORM_STATS", "PRECISIONS", "STAGES", "Resume", "check_finite", "cosine_schedule", "cross_entropy",
           "fit", "norm_stats_scope", "precision_scope", "resolve_precision"]

# Lightning's INFO lines (devices found, precision chosen) are not a run's business; warnings still show
for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)

log = logging.getLogger(__name__)
LossFn = Callable[[nn.Module, tuple], torch.Tensor]
NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def _settle_cuda_check() -> None:
    """Lightning's import sets PYTORCH_NVML_BASED_CUDA_CHECK=1 so that forked workers stay CUDA-safe. On a
    machine without a GPU nothing can be poisoned, and with it set every ``torch.cuda.is_available()``
    loads NVML again: torch.optim asks at every ``step()``, 0.1-2 ms, more than a small model's whole step.
    There, torch's own cached check is used instead, once for the process."""
    if os.environ.get(NVML_CHECK) == "1" and torch.cuda.device_count() == 0:
        os.environ[NVML_CHECK] = "0"


_settle_cuda_check()


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


def check_finite(model: nn.Module) -> None:
    for name, p in model.state_dict().items():
        if p.is_floating_point() and not torch.isfinite(p).all():
            raise Diverged(f"parameter {name} holds NaN/inf")


def make_fabric(device: str, precision: str, logger=False) -> Fabric:
    """A single-device Fabric at ``precision`` (a Lightning name) with cuDNN autotuning and TF32 on CUDA.
    The cluster environment is fixed to a plain process: one device in this process is all a fit uses, and
    Slurm detection would only warn that ``srun`` is not in front of the command."""
    cuda = device.startswith("cuda")
    if cuda:  # fp32 leftovers outside autocast (e.g. the optimizer's math) may use TF32 tensor cores
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = True
    return Fabric(accelerator="cuda" if cuda else "cpu", devices=[_index(device)] if cuda else 1,
                  precision=precision, plugins=[LightningEnvironment()], loggers=[logger] if logger else None)


def _index(device: str) -> int:
    return int(device.split(":")[1]) if ":" in device else 0


def fit(model: nn.Module, batches: Iterable, loss_fn: LossFn, optimizer: Callable, device: str,
        epochs: int | None = None, max_steps: int = -1, schedule: str = "none",
        after_step: Callable | None = None, logger=False, progress: bool | str = True,
        resume: Resume | None = None, *, precision: str | None = None,
        norm_stats: str | None = None) -> list[float]:
    """Train ``model`` in place; returns the per-epoch mean loss. Raises ``Diverged`` on NaN/inf.

    ``epochs`` (one if neither it nor ``max_steps`` is given) and ``max_steps`` bound the training,
    whichever ends first; ``schedule`` is ``none`` or ``cosine`` (per step); ``after_step(model)`` runs
    after every optimizer step; ``logger`` (a Lightning logger) gets ``train_loss`` per epoch;
    ``progress`` names the stage on the bar (or True / False); with ``resume``, the training continues
    from the epoch an earlier, stopped call saved there, and saves its own. ``precision`` (a Lightning
    name) and ``norm_stats`` (``update`` or ``frozen``) default to the enclosing scopes' (``scopes``).
    The model stays on ``device``: the caller evaluates it there (the Trainer this loop replaced handed it
    back on the CPU, where nothing moved it back before evaluation)."""
    precision = precision or current_precision(device)
    frozen = check_norm_stats(norm_stats or current_norm_stats()) == "frozen"
    n = len(batches) if hasattr(batches, "__len__") else None
    total = max_steps if max_steps > 0 else (epochs or 1) * (n or 0)
    generator = getattr(batches, "generator", None)
    if resume is not None and not isinstance(generator, torch.Generator):
        resume = None  # the batch order could not be replayed: not resumable
    restored = restore(resume, model, generator, optimizer, device) if resume is not None else None
    if restored is not None:
        log.info("%s: resuming from epoch %d of %s (done; continuing with the next)", resume.label,
                 restored["epoch"], epochs if max_steps <= 0 else f"{max_steps} steps")
    done = Trained.of(restored)
    left_epochs = epochs - done.epochs if epochs is not None else (None if max_steps > 0 else 1)
    model.train()
    if (left_epochs is None or left_epochs > 0) and done.steps != max_steps and n != 0:
        step = Step(model, loss_fn, optimizer, cosine_schedule(total) if schedule == "cosine" else None,
                    after_step, frozen, make_fabric(device, precision, logger), restored)
        saver = EpochSaver(resume, generator, epochs, max_steps, device) if resume is not None else None
        bar = EpochBar(progress if isinstance(progress, str) else "training", n, done.epochs,
                       done.epochs + left_epochs if epochs is not None else None) if progress else None
        step.run(batches, n, done, left_epochs, max_steps, saver, bar)
    model.eval()
    check_finite(model)
    return done.curve


class Step:
    """One training's optimizer step and epochs: the whole step (forward, backward, optimizer, schedule,
    ``after_step``) under the precision's autocast. The optimizer is the method's own, stepped as it is:
    the precisions offered, fp32 and bf16 autocast, need no loss scaling."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, optimizer: Callable, schedule: Callable | None,
                 after_step: Callable | None, frozen: bool, fabric: Fabric, restored: dict | None):
        self.model, self.loss_fn, self.after_step, self.fabric = model, loss_fn, after_step, fabric
        self.frozen = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)] \
            if frozen else []
        fabric.to_device(model)  # before the optimizer, whose state follows the parameters' device
        self.opt = optimizer(model.parameters())
        # stepped here, per step; built before a restored state is loaded, as its construction resets the lr
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, schedule) if schedule is not None else None
        if restored is not None:
            load_optimizer(restored, self.opt, self.sched)

    def __call__(self, batch) -> torch.Tensor:
        with self.fabric.autocast():
            for m in self.frozen:  # a loss_fn may switch the model to train mode
                m.eval()
            loss = self.loss_fn(self.model, batch)
            self.opt.zero_grad(set_to_none=True)
            self.fabric.backward(loss)
            self.opt.step()
            if self.sched is not None:
                self.sched.step()
            if self.after_step is not None:
                self.after_step(self.model)
        return loss.detach().float()

    def run(self, batches: Iterable, n: int | None, done: Trained, epochs: int | None, max_steps: int,
            saver: EpochSaver | None, bar: EpochBar | None) -> None:
        """Up to ``epochs`` passes over ``batches`` (unbounded: None), ending at step ``max_steps``. An
        epoch takes ``n`` batches and never asks for one more: an iterable that draws or trains as it goes
        (GKT's generator) does nothing past its last batch."""
        status = "failed"
        try:
            with torch.enable_grad():
                for e in itertools.count() if epochs is None else range(epochs):
                    if bar is not None:
                        bar.start_epoch(e)
                    total, count = None, 0
                    for batch in itertools.islice(batches, n) if n is not None else batches:
                        d = self(self.fabric.to_device(batch))
                        total = d if total is None else total + d
                        count, done.steps = count + 1, done.steps + 1
                        if bar is not None:
                            bar.step()
                        if done.steps == max_steps:
                            break
                    if count:  # an empty pass adds no point to the curve
                        self.end_epoch(float(total) / count, done, saver, bar)
                    if done.steps == max_steps or (not count and epochs is None):
                        break
            status = "success"
        finally:
            for lg in self.fabric.loggers:
                lg.finalize(status)
            if bar is not None:
                bar.close()

    def end_epoch(self, mean: float, done: Trained, saver: EpochSaver | None, bar: EpochBar | None) -> None:
        done.curve.append(mean)
        if self.fabric.loggers:  # step: the batches seen so far, minus one, as Lightning's Trainer counts
            self.fabric.log_dict({"train_loss": mean, "epoch": done.epochs}, step=done.steps - 1)
            for lg in self.fabric.loggers:
                lg.save()  # a stopped run keeps the curve so far
        if bar is not None:
            bar.end_epoch(mean)
        if not math.isfinite(mean):
            raise Diverged(f"loss became {mean} in epoch {len(done.curve)}")
        done.epochs += 1
        if saver is not None:
            saver(done, self.model, self.opt, self.sched)
