"""ℓ1-sparse unlearning (Jia et al. NeurIPS'23, "Model Sparsity Can Simplify Machine Unlearning", Eq. 3):
fine-tune on D_r with CE + γ_t·‖θ‖₁, where γ_t decays linearly over the epochs; run as
OPTML-Group/Unlearn-Sparse@80ba55d unlearn/FT.py (``FT_l1``, via ``FT_prune``) runs it."""

import torch.nn.functional as F
from torch import nn

from baselines.common import AUGMENT, TrainingMethod, resolve_augment, sgd_hparams
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.methods.hparams import Float


class L1Sparse(TrainingMethod):
    """γ_t = γ·(1 − t/T) for epoch t = 0..T−1, constant within an epoch, so the last epoch still has γ/T
    (FT.py:92-95 with ``--no-l1-epochs 0``); ‖θ‖₁ sums every parameter, biases and normalisation weights
    included (FT.py:14-18); the CE is the batch mean (FT.py:103)."""

    regime = Regime.FULL
    hparams = {"gamma": Float(gt=0).tune(1e-5, 1e-2, log=True), **sgd_hparams(lr=(1e-4, 1e-1)),
               "augment": AUGMENT}

    def __init__(self, gamma: float = 5e-4, epochs: int = 10, lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 5e-4, batch_size: int = 256, augment: str | bool = "auto") -> None:
        super().__init__()
        self.augment = augment
        self.gamma, self.epochs, self.lr, self.momentum = gamma, epochs, lr, momentum
        self.weight_decay, self.batch_size = weight_decay, batch_size

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        batches = data.retain.batches(self.batch_size, shuffle=True, seed=data.seed,
                                      augment=resolve_augment(self.augment, data))
        steps_per_epoch = len(batches)
        calls = [0]  # fit calls the loss once per step: the step count gives the epoch

        def loss(model, batch):
            epoch = calls[0] // steps_per_epoch
            calls[0] += 1
            gamma_t = self.gamma * (1 - epoch / self.epochs)
            x, y = batch
            l1 = sum(p.abs().sum() for p in model.parameters() if p.requires_grad)
            return F.cross_entropy(model(x), y) + gamma_t * l1

        self.train(model, batches, loss, data, self.epochs, self.lr, self.momentum, self.weight_decay)
        return model
