"""CF-k and EU-k, Goel, Prabhu, Sanyal, Lim, Torr & Kumaraguru, "Towards Adversarial Evaluation of Machine
Unlearning" (arXiv:2201.06640): only the last k layers change, trained on D_r. CF-k (catastrophic
forgetting) fine-tunes them from the original weights; EU-k (exact unlearning, ``reinit: true``) redraws
them first, so nothing they held of D_f survives, and retrains them on D_r. Every other parameter is frozen.

A layer is a Linear or Conv2d module, counted from the output; normalisation layers in between stay
frozen, though in train mode BatchNorm's running statistics still follow D_r. The redraw is seeded by the
run's seed, so EU-k repeats.
"""

import torch
from torch import nn

from baselines.common import AUGMENT, SGDMethod, resolve_augment, sgd_hparams
from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.methods.hparams import Bool, Int
from unlearn_bench.train.loop import cross_entropy


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The Linear and Conv2d modules of ``model`` in definition order (the output layer last)."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


class CFk(SGDMethod):
    """SGD on the mean CE over D_r through the last ``k`` layers alone (CF-k; EU-k with ``reinit``)."""

    regime = Regime.FULL
    hparams = {"k": Int(ge=1), "reinit": Bool(), **sgd_hparams(lr=(1e-4, 1e-1)), "augment": AUGMENT}
    search_note = "finetune's lr and epoch ranges: CF-k trains as finetune does, on the last k layers only."

    def __init__(self, k: int = 1, reinit: bool = False, epochs: int = 10, lr: float = 0.01,
                 momentum: float = 0.9, weight_decay: float = 5e-4, batch_size: int = 256,
                 augment: str | bool = "auto") -> None:
        super().__init__(epochs, lr, momentum, weight_decay, batch_size)
        self.k, self.reinit, self.augment = k, reinit, augment

    def validate(self, model: nn.Module, info: dict) -> None:
        n = len(weight_layers(model))
        if self.k > n:
            raise ConfigError(f"method.k={self.k} but the model has {n} Linear/Conv2d layers; "
                              f"fix: set method.k<={n}")

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        last = weight_layers(model)[-self.k:]
        first = next(model.parameters())
        cuda = [first.device.index or 0] if first.is_cuda else []  # a GPU model redraws from its generator
        if self.reinit:
            with torch.random.fork_rng(devices=cuda):  # the redraw's seed leaves no trace on other draws
                torch.manual_seed(data.seed)
                for m in last:
                    m.reset_parameters()
        trained = {id(p) for m in last for p in m.parameters()}
        frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in trained]
        for p in frozen:
            p.requires_grad_(False)
        batches = data.retain.batches(self.batch_size, shuffle=True, seed=data.seed,
                                      augment=resolve_augment(self.augment, data))
        try:
            self.train_sgd(model, batches, cross_entropy(), data)
        finally:
            for p in frozen:
                p.requires_grad_(True)
        return model
