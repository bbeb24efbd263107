"""NegGrad+: descend on D_r while ascending on D_f, weighted (Kurmanji et al. NeurIPS'23, SCRUB paper,
its NegGrad+ baseline): loss = α·CE(D_r) − (1−α)·CE(D_f)."""

import torch.nn.functional as F
from torch import nn

from baselines.common import PairedBatches, SGDMethod
from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Regime, UnlearnData


class NegGradPlus(SGDMethod):
    """One epoch is a pass over D_r; each retain batch is paired with a (cycled) forget batch."""

    regime = Regime.FULL

    def __init__(self, alpha: float = 0.999, epochs: int = 5, lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 5e-4, batch_size: int = 128) -> None:
        super().__init__(epochs, lr, momentum, weight_decay, batch_size)
        self.alpha = alpha

    def validate(self, model, info) -> None:
        super().validate(model, info)
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"method.alpha={self.alpha} must be in [0, 1]; fix: e.g. method.alpha=0.999")

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        a = self.alpha

        def loss(model, batch):
            (xr, yr), (xf, yf) = batch
            return a * F.cross_entropy(model(xr), yr) - (1 - a) * F.cross_entropy(model(xf), yf)

        batches = PairedBatches(data.retain.batches(self.batch_size, shuffle=True, seed=data.seed),
                                data.forget.batches(self.batch_size, shuffle=True, seed=data.seed + 1))
        self.train_sgd(model, batches, loss, data)
        return model
