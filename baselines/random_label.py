"""Random labels (RL): train on D_f relabelled with random classes together with D_r (Golatkar et al.
CVPR'20; the RL baseline of Fan et al. ICLR'24, SalUn, run as OPTML-Group/Unlearn-Saliency@a6e89fd
Classification/unlearn/RL.py runs it without a mask)."""

from torch import nn

from baselines.common import AUGMENT, RELABEL, SGDMethod, random_label_batches, resolve_augment, sgd_hparams
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.train.loop import cross_entropy


class RandomLabel(SGDMethod):
    """Mean CE over the ``relabel`` plumbing's batches (``baselines.common.random_label_batches``): by
    default the authors' D_f pass with labels redrawn per batch from all classes, then a D_r pass."""

    regime = Regime.FULL
    hparams = {**sgd_hparams(lr=(1e-4, 1e-1)), "relabel": RELABEL, "augment": AUGMENT}

    def __init__(self, epochs: int = 10, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
                 batch_size: int = 256, relabel: str = "auto", augment: str | bool = "auto") -> None:
        super().__init__(epochs, lr, momentum, weight_decay, batch_size)
        self.relabel, self.augment = relabel, augment

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        augment = resolve_augment(self.augment, data)
        batches = random_label_batches(data, self.relabel, self.batch_size, augment)
        self.train_sgd(model, batches, cross_entropy(), data)
        return model
