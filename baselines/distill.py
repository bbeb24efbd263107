"""Helpers shared by the distillation and importance baselines (SSD, LF-SSD, SCRUB, Bad Teacher, UNSIR,
GKT, JiT): a temperature-scaled KL loss, frozen teacher copies, set unions, float-tensor batches and
diagonal parameter importances."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from unlearn_bench.data.batches import Subset, TensorBatches


def kl_to_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0,
                  reduction: str = "batchmean") -> torch.Tensor:
    """KL(teacher || student) on temperature-softened outputs, scaled by T^2 so that gradients keep their
    size across temperatures (Hinton et al. 2015). ``reduction="none"`` gives one value per sample."""
    t = float(temperature)
    log_s = F.log_softmax(student_logits.float() / t, dim=1)
    log_t = F.log_softmax(teacher_logits.float() / t, dim=1)
    per_sample = (log_t.exp() * (log_t - log_s)).sum(dim=1) * t * t
    return per_sample if reduction == "none" else per_sample.mean()


def frozen_copy(model: nn.Module) -> nn.Module:
    """A copy that never trains: the teacher in teacher-student unlearning."""
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def reinitialise(model: nn.Module, std: float = 0.02) -> nn.Module:
    """Redraw every weight in place: each module's own initialiser runs, and parameters no initialiser owns
    (e.g. positional embeddings) are redrawn from N(0, std^2), so no weight of the original survives."""
    reset: set[int] = set()
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
            reset.update(id(p) for p in m.parameters(recurse=False))
    with torch.no_grad():
        for p in model.parameters():
            if id(p) not in reset:
                p.normal_(0.0, std)
    return model


def random_copy(model: nn.Module) -> nn.Module:
    """A frozen, freshly initialised model of the same architecture (an "incompetent teacher")."""
    return frozen_copy(reinitialise(copy.deepcopy(model)))


def union(a: Subset, b: Subset, ya: torch.Tensor | None = None, yb: torch.Tensor | None = None) -> Subset:
    """One set holding ``a`` then ``b``; labels may be replaced (e.g. by a forget/retain flag)."""
    y = torch.cat([a.y if ya is None else ya, b.y if yb is None else yb])
    return Subset(torch.cat([a.x, b.x]), y, a.normalize, a.augment, a.channels_last)


def float_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, shuffle: bool = True):
    """Batches over already-normalised float tensors (e.g. learnt noise mixed with real images)."""
    return TensorBatches(x, y, lambda t: t, batch_size, shuffle, seed)


def per_class_sample(s: Subset, per_class: int, seed: int) -> Subset:
    """Up to ``per_class`` seeded random items of each class present in ``s``."""
    g = torch.Generator().manual_seed(seed)
    y = s.y.cpu()
    keep = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    idx = torch.cat(keep).sort().values.to(s.x.device)
    return Subset(s.x[idx], s.y[idx], s.normalize, s.augment, s.channels_last)


def shared_optimizer(opt: torch.optim.Optimizer) -> Callable:
    """An optimizer factory for ``fit`` that hands back one optimizer across several ``fit`` calls, so
    momentum carries over between phases (as in a single hand-written loop)."""
    return lambda params: opt


def importance(model: nn.Module, batches: Iterable, loss_fn: Callable[[nn.Module, tuple], torch.Tensor],
               transform: str = "square") -> dict[str, torch.Tensor]:
    """Per-parameter importance: the mean over batches of the batch gradient, squared (``square``: the
    diagonal Fisher estimate of SSD, Foster et al. AAAI'24, eq. 1) or in absolute value (``abs``: LF-SSD).
    Every batch weighs the same, a short last one included, and the model is in eval mode, as in the SSD
    authors' calc_importance (if-loops/selective-synaptic-dampening@cdfdc0e src/ssd.py:151-180); squaring
    per batch makes the result depend on which samples share a batch, so the caller's loader order matters."""
    model.eval()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    imp = {n: torch.zeros_like(p) for n, p in params.items()}
    count = 0
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        for n, p in params.items():
            if p.grad is not None:
                imp[n] += p.grad.detach().square() if transform == "square" else p.grad.detach().abs()
        count += 1
    model.zero_grad(set_to_none=True)
    return {n: v / max(count, 1) for n, v in imp.items()}
