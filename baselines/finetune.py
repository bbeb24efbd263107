"""Fine-tuning (FT) on D_r only: unlearning by catastrophic forgetting (Warnecke et al. NDSS'23;
the FT baseline of Jia et al. NeurIPS'23 and Fan et al. ICLR'24)."""

from torch import nn

from baselines.common import SGDMethod
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.training import cross_entropy


class Finetune(SGDMethod):
    """Minimise CE on D_r with SGD; D_f is never read."""

    regime = Regime.FULL

    def __init__(self, epochs: int = 5, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
                 batch_size: int = 128) -> None:
        super().__init__(epochs, lr, momentum, weight_decay, batch_size)

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        batches = data.retain.batches(self.batch_size, shuffle=True, seed=data.seed)
        self.train_sgd(model, batches, cross_entropy(), data)
        return model
