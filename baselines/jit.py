"""JiT, Foster, Schoepf & Brintrup, "Zero-Shot Machine Unlearning at Scale via Lipschitz Regularization",
2024 (arXiv:2402.01401).

For each image x, N noisy copies x'_i = x + ξ_i, ξ_i ~ N(0, σ²I), are drawn and the model takes one SGD
step on the empirical Lipschitz ratio (1/N) Σ_i ‖f(x) − f(x'_i)‖₂ / ‖x − x'_i‖₂ (Algorithm 1): smoothing
the output around forget samples erases the sharp, memorised response to them. As in the authors' code the
noisy outputs f(x'_i) are constants (no gradient flows through them), so the step pulls f(x) towards its
noisy neighbourhood.

Data (``source``): the authors apply it to the forget-set images themselves (no retain data: their
"zero-shot"). ``source: unseen`` (the default) runs it in this harness's zero-shot regime instead, on the
unseen forget-class pool that LRA-NPP also reads, so the two compete on the same information;
``source: forget`` is the authors' setting (forget-only regime).

The model stays in eval mode while it is smoothed: a train-mode pass over one image and its noisy copies
would overwrite BatchNorm's running statistics within a few dozen steps, which on BN models (VGG, ResNet)
changes forget and retain accuracy on its own, even at a learning rate of 0.
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
    clean = model(x).float()
    with torch.no_grad():  # the neighbours are targets, not paths for the gradient
        noisy = model((x.unsqueeze(0) + noise).flatten(0, 1)).float().view(copies, b, -1)
    num = (noisy - clean.unsqueeze(0)).norm(dim=2)
    den = noise.flatten(2).float().norm(dim=2)
    return (num / den).mean()


class JiT(Method):
    """JiT (Foster et al. 2024): Lipschitz smoothing of the model around unseen forget-class images."""

    regime = Regime.ZERO_SHOT
    SOURCES = {"unseen": Regime.ZERO_SHOT, "forget": Regime.FORGET_ONLY}

    def __init__(self, lr: float = 3e-4, noise_std: float = 0.5, copies: int = 25, epochs: int = 1,
                 batch_size: int = 1, source: str = "unseen"):
        super().__init__()
        self.lr, self.noise_std, self.copies = float(lr), float(noise_std), int(copies)
        self.epochs, self.batch_size, self.source = int(epochs), int(batch_size), str(source)
        if self.source in self.SOURCES:
            self.regime = self.SOURCES[self.source]

    def validate(self, model, info) -> None:
        if self.source not in self.SOURCES:
            raise ConfigError(f"jit source {self.source!r} is unknown; fix: method.source=unseen (zero-shot: the "
                              "unseen forget-class pool) or method.source=forget (the forget set, as the authors)")
        if self.lr <= 0 or self.noise_std <= 0 or self.copies < 1 or self.epochs < 1:
            raise ConfigError(f"jit needs lr > 0, noise_std > 0, copies >= 1, epochs >= 1 (got {self.lr}, "
                              f"{self.noise_std}, {self.copies}, {self.epochs}); fix: e.g. noise_std=0.5 copies=25")

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        def loss(m, batch):
            m.eval()  # BatchNorm statistics and dropout as at test time (see the module docstring)
            x, _ = batch
            return lipschitz_ratio(m, x, self.copies, self.noise_std)

        images = data.unseen if self.source == "unseen" else data.forget
        curve = fit(model, images.batches(self.batch_size, shuffle=True, seed=data.seed), loss,
                    lambda p: torch.optim.SGD(p, lr=self.lr), data.device, epochs=self.epochs,
                    logger=data.logger, progress=data.progress)
        self.extra_metrics["jit/final_ratio"] = curve[-1]
        return model.eval()
