"""Gradient ascent (GA, "NegGrad"): maximise the cross-entropy on D_f (Thudi et al. EuroS&P'22;
the GA baseline of Jia et al. NeurIPS'23, run as OPTML-Group/Unlearn-Sparse@80ba55d unlearn/GA.py runs it)."""

import torch.nn.functional as F
from torch import nn

from baselines.common import AUGMENT, SGDMethod, resolve_augment, sgd_hparams
from unlearn_bench.methods.base import Regime, UnlearnData


def negative_ce(model, batch):
    """Minus the batch's MEAN cross-entropy (GA.py:85, ``-criterion(output, target)``)."""
    x, y = batch
    return -F.cross_entropy(model(x), y)


class GradAscent(SGDMethod):
    """Descend on −CE(D_f). Unbounded, so the budget (epochs × lr) is what keeps it from destroying the
    model; ``fit`` reports divergence as a failed run."""

    regime = Regime.FORGET_ONLY
    hparams = {**sgd_hparams(lr=(1e-6, 1e-3)), "augment": AUGMENT}
    search_note = "The papers search lr 1e-6..1e-3 with 5 epochs."

    # The signature keeps the small-batch variant's values (grad_ascent_small_batch.yaml), which callers
    # constructing the class directly rely on; conf/method/grad_ascent.yaml sets the authors' 256 / 5e-4.
    def __init__(self, epochs: int = 5, lr: float = 1e-4, momentum: float = 0.9, weight_decay: float = 5e-4,
                 batch_size: int = 256, augment: str | bool = "auto") -> None:
        super().__init__(epochs, lr, momentum, weight_decay, batch_size)
        self.augment = augment

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        batches = data.forget.batches(self.batch_size, shuffle=True, seed=data.seed,
                                      augment=resolve_augment(self.augment, data))
        self.train_sgd(model, batches, negative_ce, data)
        return model
