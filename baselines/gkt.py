"""Gated Knowledge Transfer (GKT), Chundawat, Tarun, Mandal & Kankanhalli, "Zero-Shot Machine Unlearning",
IEEE TIFS'23.

Data-free: no real image is read. A small generator G(z) produces pseudo-samples; it is trained to make
the student disagree with the original (teacher), and the student, freshly initialised as in the paper,
distils from the teacher on them. The
gate (the band-pass filter of the paper) drops every pseudo-sample to which the teacher gives more than
``gate_threshold`` probability for a forget class, so knowledge of the forget classes is never
transferred. The attention-transfer term of the paper is left out: it needs architecture-specific hooks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from baselines.distill import frozen_copy, kl_to_teacher, reinitialise
from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.training import fit


def generator(z_dim: int, hidden: int, in_shape) -> nn.Module:
    """z -> one normalised image; the closing affine-free BatchNorm keeps pseudo-samples standardised, as
    real normalised inputs are."""
    n = math.prod(in_shape)
    return nn.Sequential(nn.Linear(z_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, n),
                         nn.BatchNorm1d(n, affine=False), nn.Unflatten(1, tuple(in_shape)))


def gated_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean KL(teacher || student) over the pseudo-samples the gate keeps (0 when it keeps none)."""
    per_sample = kl_to_teacher(student_logits, teacher_logits, reduction="none")
    return (per_sample * keep).sum() / keep.sum().clamp_min(1)


class PseudoBatches:
    """Batches for ``fit``: before every ``student_steps`` batches, one generator step maximises the
    teacher-student KL over the gated pseudo-samples (the authors gate both steps); the batches themselves
    are fresh generator samples (ZSKT-style alternation)."""

    def __init__(self, gen, teacher, student, iterations, student_steps, batch_size, z_dim, lr, device, gate):
        self.gen, self.teacher, self.student, self.gate = gen, teacher, student, gate
        self.iterations, self.student_steps, self.batch_size, self.z_dim = iterations, student_steps, batch_size, z_dim
        self.opt, self.device = torch.optim.Adam(gen.parameters(), lr=lr), device

    def __len__(self) -> int:
        return self.iterations * self.student_steps

    def __iter__(self):
        for _ in range(self.iterations):
            x = self.gen(torch.randn(self.batch_size, self.z_dim, device=self.device))
            t = self.teacher(x)
            loss = -gated_kl(self.student(x), t, self.gate(t.detach()))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.student.zero_grad(set_to_none=True)  # the generator step must not leak into the student
            for _ in range(self.student_steps):  # train-mode BatchNorm: batch statistics, as when it learnt
                with torch.no_grad():
                    x = self.gen(torch.randn(self.batch_size, self.z_dim, device=self.device))
                yield (x,)


class GKT(Method):
    """GKT (Chundawat et al. TIFS'23): distil the original on gated generator samples; zero-shot."""

    regime = Regime.ZERO_SHOT

    def __init__(self, iterations: int = 300, student_steps: int = 10, batch_size: int = 128, z_dim: int = 128,
                 hidden: int = 256, generator_lr: float = 1e-3, student_lr: float = 2e-3,
                 gate_threshold: float = 0.01):
        super().__init__()
        self.iterations, self.student_steps, self.batch_size = int(iterations), int(student_steps), int(batch_size)
        self.z_dim, self.hidden = int(z_dim), int(hidden)
        self.generator_lr, self.student_lr, self.gate_threshold = float(generator_lr), float(student_lr), float(gate_threshold)
        self.in_shape = None

    def validate(self, model, info) -> None:
        if min(self.iterations, self.student_steps, self.z_dim, self.hidden) < 1 or self.batch_size < 2:
            raise ConfigError("gkt needs iterations, student_steps, z_dim, hidden >= 1 and batch_size >= 2; "
                              "fix: e.g. iterations=300 batch_size=128")
        if not 0 < self.gate_threshold < 1:
            raise ConfigError(f"gkt gate_threshold={self.gate_threshold} must be in (0, 1); fix: e.g. 0.01")
        self.in_shape = tuple(info["in_shape"])

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        # the input shape comes from validate(); without it, the unseen pool (allowed in this regime) has it
        in_shape = self.in_shape or tuple(data.unseen.x.shape[1:])
        teacher, forget = frozen_copy(model), list(data.forget_classes)
        # the student starts untrained, as in the paper: it learns only what the gate lets through (a student
        # starting as the original would sit at KL = 0 with zero gradient, and nothing would move)
        reinitialise(model)
        gen = generator(self.z_dim, self.hidden, in_shape).to(data.device).train()

        def gate(teacher_logits):  # keep the pseudo-samples the teacher does not see as a forget class
            return teacher_logits.float().softmax(1)[:, forget].sum(1) <= self.gate_threshold

        batches = PseudoBatches(gen, teacher, model, self.iterations, self.student_steps, self.batch_size,
                                self.z_dim, self.generator_lr, data.device, gate)
        kept = []

        def loss(student, batch):
            (x,) = batch
            with torch.no_grad():
                t = teacher(x)
                keep = gate(t)
            kept.append(keep.float().mean().detach())
            return gated_kl(student(x), t, keep)

        curve = fit(model, batches, loss, lambda p: torch.optim.Adam(p, lr=self.student_lr), data.device,
                    epochs=1, logger=data.logger, progress=data.progress)
        self.extra_metrics.update({"gkt/final_kl": curve[-1],
                                   "gkt/kept_frac": float(torch.stack(kept).mean()) if kept else float("nan")})
        return model.eval()
