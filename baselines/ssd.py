"""Selective Synaptic Dampening (SSD), Foster, Schoepf & Brintrup, AAAI'24.

No training: parameters far more important to the forget set than to the whole training set are shrunk
towards zero. Importance is the diagonal Fisher estimate (eq. 1): the squared gradient of the
cross-entropy, averaged over batches, computed on D_f and on D = D_r ∪ D_f. Parameter i is dampened when
imp_f[i] > α·imp_D[i] (eq. 2), by the factor β = min(λ·imp_D[i] / imp_f[i], 1) (eq. 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.distill import importance, union
from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Method, Regime, UnlearnData


@torch.no_grad()
def dampen(model: nn.Module, imp_forget: dict, imp_full: dict, alpha: float, lam: float) -> dict[str, float]:
    """Multiply the selected parameters by β in place (eqs. 2-3); returns the fraction selected per tensor."""
    selected = {}
    for name, p in model.named_parameters():
        if name not in imp_forget:
            continue
        f, d = imp_forget[name], imp_full[name]
        mask = f > alpha * d
        beta = (lam * d / f.clamp_min(torch.finfo(f.dtype).tiny)).clamp(max=1.0)
        p.mul_(torch.where(mask, beta, torch.ones_like(beta)))
        selected[name] = float(mask.float().mean())
    return selected


def ce_loss(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


class SSD(Method):
    """SSD (Foster et al. AAAI'24): dampen parameters specialised to the forget set; no training."""

    regime = Regime.FULL
    transform = "square"  # diagonal Fisher

    def __init__(self, alpha: float = 10.0, lam: float = 1.0, batch_size: int = 128):
        super().__init__()
        self.alpha, self.lam, self.batch_size = float(alpha), float(lam), int(batch_size)

    def validate(self, model, info) -> None:
        if self.alpha <= 0 or self.lam <= 0:
            raise ConfigError(f"SSD needs alpha > 0 and lam > 0 (got {self.alpha}, {self.lam}); "
                              f"fix: use the paper's alpha=10, lam=1")

    def loss(self, model, batch):
        return ce_loss(model, batch)

    def reference_set(self, data: UnlearnData):
        """The set the forget importance is compared against: the full training data D_r ∪ D_f."""
        return union(data.retain, data.forget)

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        forget = data.forget.batches(self.batch_size, shuffle=True, seed=data.seed)
        full = self.reference_set(data).batches(self.batch_size, shuffle=True, seed=data.seed)
        imp_f = importance(model, forget, self.loss, self.transform)
        imp_d = importance(model, full, self.loss, self.transform)
        selected = dampen(model, imp_f, imp_d, self.alpha, self.lam)
        n = {k: p.numel() for k, p in model.named_parameters() if k in selected}
        self.extra_metrics["ssd/selected_frac"] = sum(selected[k] * n[k] for k in n) / max(sum(n.values()), 1)
        return model.eval()
