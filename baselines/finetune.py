"""Fine-tuning (FT) on D_r only: unlearning by catastrophic forgetting (Warnecke et al. NDSS'23;
the FT baseline of Jia et al. NeurIPS'23 and Fan et al. ICLR'24, run as OPTML-Group/Unlearn-Sparse@80ba55d
unlearn/FT.py runs it)."""

from torch import nn

from baselines.common import AUGMENT, SGDMethod, resolve_augment, sgd_hparams
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.train.loop import cross_entropy


class Finetune(SGDMethod):
    """Minimise the mean CE on D_r with SGD in train mode (FT.py:35, :103); D_f is never read. The retain
    loader is reshuffled every epoch and carries the training augmentation (``augment: auto``)."""

    regime = Regime.FULL
    hparams = {**sgd_hparams(lr=(1e-4, 1e-1)), "augment": AUGMENT}
    search_note = "The papers search lr 0.01-0.1 with 10 epochs."

    def __init__(self, epochs: int = 10, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
                 batch_size: int = 256, augment: str | bool = "auto") -> None:
        super().__init__(epochs, lr, momentum, weight_decay, batch_size)
        self.augment = augment

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        batches = data.retain.batches(self.batch_size, shuffle=True, seed=data.seed,
                                      augment=resolve_augment(self.augment, data))
        self.train_sgd(model, batches, cross_entropy(), data)
        return model
