"""Gradient ascent (GA, "NegGrad"): maximise the cross-entropy on D_f (Thudi et al. EuroS&P'22;
the GA baseline of Jia et al. NeurIPS'23)."""

import torch.nn.functional as F
from torch import nn

from baselines.common import SGDMethod
from unlearn_bench.methods.base import Regime, UnlearnData


def negative_ce(model, batch):
    x, y = batch
    return -F.cross_entropy(model(x), y)


class GradAscent(SGDMethod):
    """Descend on −CE(D_f). Unbounded, so the budget (epochs × lr) is what keeps it from destroying the
    model; ``fit`` reports divergence as a failed run."""

    regime = Regime.FORGET_ONLY

    def __init__(self, epochs: int = 5, lr: float = 1e-4, momentum: float = 0.9, weight_decay: float = 0.0,
                 batch_size: int = 32) -> None:
        super().__init__(epochs, lr, momentum, weight_decay, batch_size)

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        batches = data.forget.batches(self.batch_size, shuffle=True, seed=data.seed)
        self.train_sgd(model, batches, negative_ce, data)
        return model
