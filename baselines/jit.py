"""JiT, Foster, Schoepf & Brintrup, "Zero-Shot Machine Unlearning at Scale via Lipschitz Regularization",
2024 (arXiv:2402.01401).

Zero-shot: only unseen forget-class images are used. For each image x, N noisy copies x'_i = x + ξ_i,
ξ_i ~ N(0, σ²I), are drawn and the model takes one SGD step on the empirical Lipschitz ratio
(1/N) Σ_i ‖f(x) − f(x'_i)‖₂ / ‖x − x'_i‖₂ (Algorithm 1): smoothing the output around forget samples
erases the sharp, memorised response to them.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.training import fit


def lipschitz_ratio(model: nn.Module, x: torch.Tensor, copies: int, noise_std: float) -> torch.Tensor:
    """Mean over samples and noisy copies of ‖f(x) − f(x')‖ / ‖x − x'‖."""
    b = x.shape[0]
    noise = torch.randn(copies, *x.shape, device=x.device, dtype=x.dtype) * noise_std
    out = model(torch.cat([x, (x.unsqueeze(0) + noise).flatten(0, 1)]))
    clean, noisy = out[:b].float(), out[b:].float().view(copies, b, -1)
    num = (noisy - clean.unsqueeze(0)).norm(dim=2)
    den = noise.flatten(2).float().norm(dim=2)
    return (num / den).mean()


class JiT(Method):
    """JiT (Foster et al. 2024): Lipschitz smoothing of the model around unseen forget-class images."""

    regime = Regime.ZERO_SHOT

    def __init__(self, lr: float = 3e-4, noise_std: float = 0.5, copies: int = 25, epochs: int = 1,
                 batch_size: int = 1):
        super().__init__()
        self.lr, self.noise_std, self.copies = float(lr), float(noise_std), int(copies)
        self.epochs, self.batch_size = int(epochs), int(batch_size)

    def validate(self, model, info) -> None:
        if self.lr <= 0 or self.noise_std <= 0 or self.copies < 1 or self.epochs < 1:
            raise ConfigError(f"jit needs lr > 0, noise_std > 0, copies >= 1, epochs >= 1 (got {self.lr}, "
                              f"{self.noise_std}, {self.copies}, {self.epochs}); fix: e.g. noise_std=0.5 copies=25")

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        def loss(m, batch):
            x, _ = batch
            return lipschitz_ratio(m, x, self.copies, self.noise_std)

        curve = fit(model, data.unseen.batches(self.batch_size, shuffle=True, seed=data.seed), loss,
                    lambda p: torch.optim.SGD(p, lr=self.lr), data.device, epochs=self.epochs,
                    logger=data.logger, progress=data.progress)
        self.extra_metrics["jit/final_ratio"] = curve[-1]
        return model.eval()
