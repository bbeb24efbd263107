"""Boundary Shrink (Chen et al. CVPR'23, "Boundary Unlearning"): an FGSM step on a frozen copy of the
original model finds, for each forget sample, the nearest wrong class; the model is then trained to put
the sample in that class, shrinking the forgotten class's decision region onto its neighbours."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import TrainingMethod, check_positive
from unlearn_bench.methods.base import Regime, UnlearnData


def nearest_wrong_class(frozen: nn.Module, x: torch.Tensor, y: torch.Tensor, step: torch.Tensor,
                        lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """FGSM x' = clip(x + step·sign(∇_x CE(f(x), y))) on ``frozen``; the label is argmax f(x') over the
    classes other than y (the paper keeps y when the attack fails; excluding it makes every target wrong)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(frozen(x), y), x)
    x_adv = torch.maximum(torch.minimum(x.detach() + step * grad.sign(), hi), lo)
    with torch.no_grad():
        logits = frozen(x_adv).float()
    return logits.scatter(1, y[:, None], float("-inf")).argmax(1)


class BoundaryShrink(TrainingMethod):
    """``bound`` is the FGSM step in [0, 1] pixel units (converted to normalised units per channel)."""

    regime = Regime.FORGET_ONLY

    def __init__(self, bound: float = 0.1, epochs: int = 10, lr: float = 1e-5, momentum: float = 0.9,
                 weight_decay: float = 0.0, batch_size: int = 32) -> None:
        super().__init__()
        self.bound, self.epochs, self.lr, self.momentum = bound, epochs, lr, momentum
        self.weight_decay, self.batch_size = weight_decay, batch_size

    def validate(self, model, info) -> None:
        check_positive(bound=self.bound, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size)

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        forget = data.forget
        frozen = copy.deepcopy(model).eval().requires_grad_(False)
        mean, std = forget.normalize.mean, forget.normalize.std
        step, lo, hi = self.bound / std, (0 - mean) / std, (1 - mean) / std

        def loss(model, batch):
            x, y = batch
            target = nearest_wrong_class(frozen, x, y, step, lo, hi)
            return F.cross_entropy(model(x), target)

        batches = forget.batches(self.batch_size, shuffle=True, seed=data.seed)
        self.train(model, batches, loss, data, self.epochs, self.lr, self.momentum, self.weight_decay)
        return model
