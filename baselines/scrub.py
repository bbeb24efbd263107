"""SCRUB, Kurmanji, Triantafillou, Hayes & Triantafillou, "Towards Unbounded Machine Unlearning",
NeurIPS'23.

The original model is a frozen teacher; the student starts as a copy. Each epoch, for the first
``max_steps`` epochs, a max-pass over D_f ascends KL(teacher || student) (eq. 2's forget term); then a
min-pass over D_r descends γ·CE + α·KL (eq. 3). One SGD optimizer serves both passes, as in the authors'
code, so momentum carries across them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.distill import frozen_copy, kl_to_teacher, shared_optimizer
from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.training import fit


class SCRUB(Method):
    """SCRUB (Kurmanji et al. NeurIPS'23): alternate max-steps on D_f and min-steps on D_r."""

    regime = Regime.FULL

    def __init__(self, lr: float = 5e-4, momentum: float = 0.9, weight_decay: float = 5e-4, epochs: int = 3,
                 max_steps: int = 2, temperature: float = 4.0, ce_weight: float = 0.99, kl_weight: float = 0.001,
                 retain_batch_size: int = 128, forget_batch_size: int = 32):
        super().__init__()
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.epochs, self.max_steps, self.temperature = int(epochs), int(max_steps), float(temperature)
        self.ce_weight, self.kl_weight = float(ce_weight), float(kl_weight)
        self.retain_batch_size, self.forget_batch_size = int(retain_batch_size), int(forget_batch_size)

    def validate(self, model, info) -> None:
        if self.epochs < 1 or not 0 <= self.max_steps <= self.epochs or self.lr <= 0:
            raise ConfigError(f"SCRUB needs epochs >= 1, 0 <= max_steps <= epochs and lr > 0 (got "
                              f"{self.epochs}, {self.max_steps}, {self.lr}); fix: e.g. epochs=3 max_steps=2")

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        teacher, T = frozen_copy(model), self.temperature

        def maximise(student, batch):
            x, _ = batch
            with torch.no_grad():
                t = teacher(x)
            return -kl_to_teacher(student(x), t, T)

        def minimise(student, batch):
            x, y = batch
            with torch.no_grad():
                t = teacher(x)
            out = student(x)
            return self.ce_weight * F.cross_entropy(out, y) + self.kl_weight * kl_to_teacher(out, t, T)

        opt = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay)
        forget = data.forget.batches(self.forget_batch_size, shuffle=True, seed=data.seed)
        retain = data.retain.batches(self.retain_batch_size, shuffle=True, seed=data.seed)
        curve = {"max": [], "min": []}
        for epoch in range(self.epochs):
            if epoch < self.max_steps:
                curve["max"] += fit(model, forget, maximise, shared_optimizer(opt), data.device, epochs=1,
                                    logger=data.logger, progress=data.progress)
            curve["min"] += fit(model, retain, minimise, shared_optimizer(opt), data.device, epochs=1,
                                logger=data.logger, progress=data.progress)
        self.extra_metrics["scrub/final_forget_kl"] = -curve["max"][-1] if curve["max"] else float("nan")
        self.extra_metrics["scrub/final_retain_loss"] = curve["min"][-1]
        return model.eval()
