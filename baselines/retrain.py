"""Retrain from scratch on D_r: the exact-unlearning oracle every table is measured against."""

from torch import nn

from unlearn_bench.methods.base import Method, Regime, UnlearnData


class Retrain(Method):
    """Returns the oracle the pipeline trains on D_r alone with the original recipe and a fresh
    initialisation of every layer (cached by config and forget set). Its honest cost is the oracle's
    training time, recorded as ``retrain/train_s``; ``cost/unlearn_s`` is only a load on a cache hit."""

    regime = Regime.FULL
    needs_oracle = True

    def __init__(self) -> None:
        super().__init__()

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        oracle, meta = data.retrain_oracle()
        self.extra_metrics = {"retrain/cache_hit": bool(meta.get("cache_hit", False)),
                              "retrain/train_s": float(meta.get("train_s", float("nan")))}
        return oracle
