"""NegGrad+ as defined and run with SCRUB (Kurmanji et al. NeurIPS'23, its NegGrad+ baseline; code:
meghdadk/SCRUB@98ffb11 thirdparty/repdistiller/helper/loops.py:12-76 ``train_negrad``):
loss = α·CE(D_r batch) − (1−α)·CE(D_f batch), both batch means, in train mode.

One epoch is one pass over D_r; retain batch i is paired with forget batch i of that epoch's shuffled
pass over D_f, and when D_f runs out its batches repeat in the same order (``zip(train_loader,
cycle(delete_loader))``: ``itertools.cycle`` replays what it saw, it does not reshuffle). Every epoch
starts a new ``cycle`` and so a fresh pass over D_f from its first batch.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from baselines.common import SGDMethod, sgd_hparams
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.methods.hparams import Float, Int


class CycledPairs:
    """Batches of ``primary`` each paired with a batch of ``secondary``; per pass, ``secondary`` is read
    once and its batches then replayed in order (``zip(primary, itertools.cycle(secondary))``)."""

    def __init__(self, primary, secondary):
        self.primary, self.secondary = primary, secondary

    def __len__(self) -> int:
        return len(self.primary)

    def __iter__(self):
        fresh, seen = iter(self.secondary), []
        for i, a in enumerate(self.primary):
            if fresh is not None:
                b = next(fresh, None)
                if b is None:
                    fresh = None
                else:
                    seen.append(b)
            yield a, (b if fresh is not None else seen[i % len(seen)])


class NegGradPlus(SGDMethod):
    """NegGrad+ (the SCRUB paper's baseline): descend on D_r while ascending on D_f, weighted by α."""

    regime = Regime.FULL
    hparams = {"alpha": Float(ge=0, le=1).tune(0.9, 0.9999), **sgd_hparams(lr=(1e-4, 1e-1)),
               "forget_batch_size": Int(ge=1, null=True)}
    search_note = "Plain SGD with batches 128 / 32, as conf/method/neggrad_plus.yaml."

    def __init__(self, alpha: float = 0.9999, epochs: int = 10, lr: float = 0.01, momentum: float = 0.0,
                 weight_decay: float = 0.0, batch_size: int = 128,
                 forget_batch_size: int | None = 32) -> None:
        super().__init__(epochs, lr, momentum, weight_decay, batch_size)
        self.alpha = alpha
        self.forget_batch_size = forget_batch_size  # None: the retain batch size

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        a = self.alpha

        def loss(model, batch):
            (xr, yr), (xf, yf) = batch
            return a * F.cross_entropy(model(xr), yr) - (1 - a) * F.cross_entropy(model(xf), yf)

        forget_bs = self.forget_batch_size or self.batch_size
        batches = CycledPairs(data.retain.batches(self.batch_size, shuffle=True, seed=data.seed),
                              data.forget.batches(forget_bs, shuffle=True, seed=data.seed + 1))
        self.train_sgd(model, batches, loss, data)
        return model
