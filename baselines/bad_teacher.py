"""Bad Teacher, Chundawat, Tarun, Mandal & Kankanhalli, "Can Bad Teaching Induce Forgetting? Unlearning in
Deep Networks Using an Incompetent Teacher", AAAI'23.

Two teachers: the original (competent) and a randomly initialised model of the same architecture
(incompetent). The student starts from the original and is distilled, sample by sample, towards the
incompetent teacher on D_f and the competent one on a random fraction of D_r (eq. 4: KL with temperature).
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.distill import frozen_copy, kl_to_teacher, random_copy, union
from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.training import fit


class BadTeacher(Method):
    """Bad Teacher (Chundawat et al. AAAI'23): forget samples follow a random teacher, retain samples the
    original."""

    regime = Regime.FULL

    def __init__(self, lr: float = 1e-4, epochs: int = 1, batch_size: int = 256, retain_fraction: float = 0.3,
                 temperature: float = 1.0):
        super().__init__()
        self.lr, self.epochs, self.batch_size = float(lr), int(epochs), int(batch_size)
        self.retain_fraction, self.temperature = float(retain_fraction), float(temperature)

    def validate(self, model, info) -> None:
        if not 0 < self.retain_fraction <= 1 or self.lr <= 0 or self.epochs < 1:
            raise ConfigError(f"bad_teacher needs 0 < retain_fraction <= 1, lr > 0, epochs >= 1 (got "
                              f"{self.retain_fraction}, {self.lr}, {self.epochs}); fix: e.g. retain_fraction=0.3")

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        good, bad = frozen_copy(model), random_copy(model)
        retain = data.retain.sample(max(1, round(self.retain_fraction * len(data.retain))), data.seed)
        forget = data.forget
        # one shuffled set whose label is the "unlearn" flag: 1 = forget sample -> incompetent teacher
        mixed = union(retain, forget, torch.zeros_like(retain.y), torch.ones_like(forget.y))

        def loss(student, batch):
            x, flag = batch
            with torch.no_grad():
                target = torch.where(flag[:, None].bool(), bad(x), good(x))
            return kl_to_teacher(student(x), target, self.temperature)

        curve = fit(model, mixed.batches(self.batch_size, shuffle=True, seed=data.seed), loss,
                    lambda p: torch.optim.Adam(p, lr=self.lr), data.device, epochs=self.epochs,
                    logger=data.logger, progress=data.progress)
        self.extra_metrics["bad_teacher/final_loss"] = curve[-1]
        return model.eval()
