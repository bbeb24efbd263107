"""Random labels (RL): train on D_f relabelled with random wrong classes together with D_r
(Golatkar et al. CVPR'20; the RL setting of Fan et al. ICLR'24, SalUn)."""

from torch import nn

from baselines.common import SGDMethod, relabelled_union
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.training import cross_entropy


class RandomLabel(SGDMethod):
    """CE on D_r ∪ (D_f with a fixed random retain-class label per sample), shuffled together."""

    regime = Regime.FULL

    def __init__(self, epochs: int = 10, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4,
                 batch_size: int = 128) -> None:
        super().__init__(epochs, lr, momentum, weight_decay, batch_size)

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        union = relabelled_union(data.retain, data.forget, data.num_classes, data.forget_classes, data.seed)
        batches = union.batches(self.batch_size, shuffle=True, seed=data.seed)
        self.train_sgd(model, batches, cross_entropy(), data)
        return model
