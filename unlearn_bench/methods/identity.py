from torch import nn

from unlearn_bench.methods.base import Method, Regime, UnlearnData


class Identity(Method):
    """Returns the original model unchanged: the reference row every table needs."""

    regime = Regime.ZERO_SHOT

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        return model
