"""UNSIR, Tarun, Chundawat, Mandal & Kankanhalli, "Fast Yet Effective Machine Unlearning", IEEE TNNLS'23.

1. Error-maximising noise: for each forget class c, a batch of noise images N_c is learnt with the model
   frozen to maximise the cross-entropy of class c, with an l2 penalty keeping the noise bounded (eq. 1).
2. Impair: one epoch on N (labelled c) mixed with a small per-class sample of D_r, at a high learning rate.
3. Repair: one epoch on the D_r sample alone, to restore the retain classes.
Regime: full, because the impair and repair steps read a sample of D_r (never D_f itself).

As the authors' notebook runs it (vikram2000b/Fast-Machine-Unlearning@252bc92, "Machine Unlearning.ipynb"):
the D_r sample is the *first* 1,000 images of each retain class in dataset order (cell 20); the noise is
learnt with the freshly loaded model, i.e. in train mode, so BatchNorm normalises with the noise batch's
statistics and its running statistics drift toward the noise (cells 23-24); and the impair set holds, per
forget class, 20 copies of the rows ``range(batch[0].size(0))`` of the noise batch, which is the channel
count of one image, not the batch size (cell 26): 20 copies of 3 noise images on CIFAR, of 1 on
grey-scale. ``noise_rows: all`` takes every row instead, as the loop evidently meant (``unsir_full_noise``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.distill import float_batches
from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.methods.hparams import Choice, Float, Int
from unlearn_bench.train.loop import cross_entropy


def error_maximising_noise(model: nn.Module, in_shape, cls: int, n: int, steps: int, lr: float,
                           l2: float, device: str) -> torch.Tensor:
    """Noise images (in normalised input space) the model misclassifies as far from ``cls`` as it can:
    minimise -CE(f(N), cls) + l2 * mean ||N||^2 over N (UNSIR eq. 1). The model runs in train mode, as in
    the authors' notebook (its BatchNorm statistics move with the noise); its weights stay fixed."""
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    noise = torch.randn(n, *in_shape, device=device, requires_grad=True)
    opt = torch.optim.Adam([noise], lr=lr)
    target = torch.full((n,), cls, device=device)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = -F.cross_entropy(model(noise), target) + l2 * noise.square().flatten(1).sum(1).mean()
        loss.backward()
        opt.step()
    for p in trainable:
        p.requires_grad_(True)
    return noise.detach()


def first_per_class(y: torch.Tensor, per_class: int) -> torch.Tensor:
    """Indices of the first ``per_class`` items of each class in set order, classes ascending (the
    authors' ``classwise_train[c][:n]``): D_r keeps the training set's order, so the pick is fixed."""
    return torch.cat([torch.nonzero(y == c).flatten()[:per_class] for c in torch.unique(y).tolist()])


def impair_noise(noise: torch.Tensor, copies: int, rows: str) -> torch.Tensor:
    """The noise images the impair step trains on: ``copies`` repeats of the first ``noise.shape[1]``
    (channel count, the authors' ``range(batch[0].size(0))``) rows of the noise batch, or of every row."""
    n = noise.shape[1] if rows == "channels" else len(noise)
    return noise[:n].repeat(copies, *[1] * (noise.dim() - 1))


class UNSIR(Method):
    """UNSIR (Tarun et al. TNNLS'23): impair with error-maximising noise, repair on a D_r sample."""

    regime = Regime.FULL
    hparams = {"retain_per_class": Int(ge=1), "noise_per_class": Int(ge=1), "noise_steps": Int(ge=1),
               "noise_lr": Float(gt=0), "noise_l2": Float(ge=0), "noise_copies": Int(ge=1),
               "noise_rows": Choice("channels", "all"), "impair_lr": Float(gt=0), "repair_lr": Float(gt=0),
               "impair_epochs": Int(ge=1), "repair_epochs": Int(ge=1), "batch_size": Int(ge=1)}

    def __init__(self, retain_per_class: int = 1000, noise_per_class: int = 256, noise_steps: int = 40,
                 noise_lr: float = 0.1, noise_l2: float = 0.1, noise_copies: int = 20,
                 noise_rows: str = "channels", impair_lr: float = 0.02, repair_lr: float = 0.01,
                 impair_epochs: int = 1, repair_epochs: int = 1,
                 batch_size: int = 256):
        super().__init__()
        self.retain_per_class, self.noise_per_class = int(retain_per_class), int(noise_per_class)
        self.noise_copies, self.noise_rows = int(noise_copies), str(noise_rows)
        self.noise_steps, self.noise_lr, self.noise_l2 = int(noise_steps), float(noise_lr), float(noise_l2)
        self.impair_lr, self.repair_lr = float(impair_lr), float(repair_lr)
        self.impair_epochs, self.repair_epochs = int(impair_epochs), int(repair_epochs)
        self.batch_size = int(batch_size)

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        retain = data.retain
        idx = first_per_class(retain.y, self.retain_per_class)
        xr, yr = retain.normalize(retain.x[idx]), retain.y[idx]
        learnt = [error_maximising_noise(model, xr.shape[1:], c, self.noise_per_class, self.noise_steps,
                                         self.noise_lr, self.noise_l2, data.device)
                  for c in data.forget_classes]
        noise = [impair_noise(n, self.noise_copies, self.noise_rows) for n in learnt]
        # labelled with its forget class as in the authors' later copy (bad-teaching-unlearning@f1aa988
        # unlearn.py:124); the notebook's constant class_num = 0 (cell 26) is right only for class 0
        yn = [torch.full((len(n),), c, device=yr.device) for n, c in zip(noise, data.forget_classes)]
        impair = float_batches(torch.cat([xr, *noise]), torch.cat([yr, *yn]), self.batch_size, data.seed)
        ce = cross_entropy()
        impair_curve = data.fit(model, impair, ce, lambda p: torch.optim.Adam(p, lr=self.impair_lr),
                                epochs=self.impair_epochs)
        repair_curve = data.fit(model, float_batches(xr, yr, self.batch_size, data.seed + 1), ce,
                                lambda p: torch.optim.Adam(p, lr=self.repair_lr), epochs=self.repair_epochs)
        self.extra_metrics.update({"unsir/impair_loss": impair_curve[-1],
                                   "unsir/repair_loss": repair_curve[-1],
                                   "unsir/retain_used": float(len(yr)),
                                   "unsir/noise_used": float(sum(len(n) for n in yn))})
        return model.eval()
