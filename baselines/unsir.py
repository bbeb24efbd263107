"""UNSIR, Tarun, Chundawat, Mandal & Kankanhalli, "Fast Yet Effective Machine Unlearning", IEEE TNNLS'23.

1. Error-maximising noise: for each forget class c, a batch of noise images N_c is learnt with the model
   frozen to maximise the cross-entropy of class c, with an l2 penalty keeping the noise bounded (eq. 1).
2. Impair: one epoch on N (labelled c) mixed with a small per-class sample of D_r, at a high learning rate.
3. Repair: one epoch on the D_r sample alone, to restore the retain classes.
Regime: full, because the impair and repair steps read a sample of D_r (never D_f itself).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.distill import float_batches, per_class_sample
from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.training import cross_entropy, fit


def error_maximising_noise(model: nn.Module, in_shape, cls: int, n: int, steps: int, lr: float,
                           l2: float, device: str) -> torch.Tensor:
    """Noise images (in normalised input space) the frozen model misclassifies as far from ``cls`` as it
    can: minimise -CE(f(N), cls) + l2 * mean ||N||^2 over N (UNSIR eq. 1)."""
    model.eval()
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    noise = torch.randn(n, *in_shape, device=device, requires_grad=True)
    opt = torch.optim.Adam([noise], lr=lr)
    target = torch.full((n,), cls, device=device)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = -F.cross_entropy(model(noise), target) + l2 * noise.square().flatten(1).sum(1).mean()
        loss.backward()
        opt.step()
    for p in trainable:
        p.requires_grad_(True)
    return noise.detach()


class UNSIR(Method):
    """UNSIR (Tarun et al. TNNLS'23): impair with error-maximising noise, repair on a D_r sample."""

    regime = Regime.FULL

    def __init__(self, retain_per_class: int = 1000, noise_per_class: int = 256, noise_steps: int = 20,
                 noise_lr: float = 0.1, noise_l2: float = 0.1, impair_lr: float = 0.02, repair_lr: float = 0.01,
                 impair_epochs: int = 1, repair_epochs: int = 1, batch_size: int = 256):
        super().__init__()
        self.retain_per_class, self.noise_per_class = int(retain_per_class), int(noise_per_class)
        self.noise_steps, self.noise_lr, self.noise_l2 = int(noise_steps), float(noise_lr), float(noise_l2)
        self.impair_lr, self.repair_lr = float(impair_lr), float(repair_lr)
        self.impair_epochs, self.repair_epochs, self.batch_size = int(impair_epochs), int(repair_epochs), int(batch_size)

    def validate(self, model, info) -> None:
        if min(self.retain_per_class, self.noise_per_class, self.impair_epochs, self.repair_epochs) < 1:
            raise ConfigError("unsir needs retain_per_class, noise_per_class and both epoch counts >= 1; "
                              "fix: e.g. impair_epochs=1 repair_epochs=1")

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        sample = per_class_sample(data.retain, self.retain_per_class, data.seed)
        xr, yr = sample.tensors()
        noise = [error_maximising_noise(model, xr.shape[1:], c, self.noise_per_class, self.noise_steps,
                                        self.noise_lr, self.noise_l2, data.device) for c in data.forget_classes]
        yn = [torch.full((self.noise_per_class,), c, device=yr.device) for c in data.forget_classes]
        impair = float_batches(torch.cat([xr, *noise]), torch.cat([yr, *yn]), self.batch_size, data.seed)
        ce = cross_entropy()
        impair_curve = fit(model, impair, ce, lambda p: torch.optim.Adam(p, lr=self.impair_lr), data.device,
                           epochs=self.impair_epochs, logger=data.logger, progress=data.progress)
        repair_curve = fit(model, float_batches(xr, yr, self.batch_size, data.seed + 1), ce,
                           lambda p: torch.optim.Adam(p, lr=self.repair_lr), data.device,
                           epochs=self.repair_epochs, logger=data.logger, progress=data.progress)
        self.extra_metrics.update({"unsir/impair_loss": impair_curve[-1], "unsir/repair_loss": repair_curve[-1],
                                   "unsir/retain_used": float(len(sample))})
        return model.eval()
