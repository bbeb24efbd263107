"""Selective Synaptic Dampening (SSD), Foster, Schoepf & Brintrup, AAAI'24.

No training: parameters far more important to the forget set than to the whole training set are shrunk
towards zero. Importance is the diagonal Fisher estimate (eq. 1): the squared gradient of the batch-mean
cross-entropy, summed over batches and divided by their number, computed in eval mode on D_f and on
D = D_r ∪ D_f. Parameter i (every parameter, biases and norm layers included) is dampened when
imp_f[i] > α·imp_D[i] (eq. 2), by the factor β = min(λ·imp_D[i] / imp_f[i], 1) (eq. 3).

Because each batch's gradient is squared before it is summed, the importances depend on which images
share a batch. ``order="authors"`` reads the sets as the authors' loaders do
(if-loops/selective-synaptic-dampening@cdfdc0e, src/forget_full_class_main.py:152-157 and
src/forget_full_class_strategies.py:24-63): unshuffled, each set grouped by class in ascending class
order (dataset order within a class), D = D_r followed by D_f as one block, batches of 64 with the short
last batch kept. ``order="shuffled"`` (the ``ssd_shuffled`` row) reshuffles each set with the run's seed,
so most batches mix classes.

``alpha="auto"`` is the authors' per-architecture rule (forget_full_class_main.py:161-177): α = 10, halved
to 5 for a Vision Transformer; a model counts as one when it holds an ``nn.MultiheadAttention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.distill import importance, union
from unlearn_bench.data.batches import Subset
from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.methods.hparams import Choice, Float, Int

ORDERS = ("authors", "shuffled")


def class_grouped(s: Subset) -> Subset:
    """``s`` reordered as the authors build their sets: by class, ascending, dataset order kept within a
    class (a stable sort on the label)."""
    idx = torch.sort(s.y, stable=True).indices
    return Subset(s.x[idx], s.y[idx], s.normalize, s.augment, s.channels_last)


def auto_alpha(model: nn.Module) -> float:
    """The authors' α: 10, times 0.5 for a Vision Transformer (forget_full_class_main.py:161-165, 177)."""
    is_transformer = any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    return 5.0 if is_transformer else 10.0


@torch.no_grad()
def dampen(model: nn.Module, imp_forget: dict, imp_full: dict, alpha: float, lam: float) -> dict[str, float]:
    """Multiply the selected parameters by β in place (eqs. 2-3); returns the fraction selected per tensor."""
    selected = {}
    for name, p in model.named_parameters():
        if name not in imp_forget:
            continue
        f, d = imp_forget[name], imp_full[name]
        mask = f > alpha * d
        beta = (lam * d / f.clamp_min(torch.finfo(f.dtype).tiny)).clamp(max=1.0)
        p.mul_(torch.where(mask, beta, torch.ones_like(beta)))
        selected[name] = float(mask.float().mean())
    return selected


def ce_loss(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


class SSD(Method):
    """SSD (Foster et al. AAAI'24): dampen parameters specialised to the forget set; no training."""

    regime = Regime.FULL
    transform = "square"  # diagonal Fisher
    hparams = {"alpha": Float(gt=0, also=("auto",)).tune(1.0, 100.0, log=True),
               "lam": Float(gt=0).tune(0.1, 10.0, log=True), "batch_size": Int(ge=1),
               "order": Choice(*ORDERS)}
    search_note = """The search replaces alpha: auto. It tunes the authors' plumbing (unshuffled,
    class-grouped batches of 64); the loaders are not searched."""

    def __init__(self, alpha: float | str = "auto", lam: float = 1.0, batch_size: int = 64,
                 order: str = "authors"):
        super().__init__()
        self.alpha = alpha if alpha == "auto" else float(alpha)
        self.lam, self.batch_size, self.order = float(lam), int(batch_size), order

    def resolved_alpha(self, model: nn.Module) -> float:
        return auto_alpha(model) if self.alpha == "auto" else self.alpha

    def loss(self, model, batch):
        return ce_loss(model, batch)

    def loaders(self, data: UnlearnData):
        """Batches over D_f and over the full training data D = D_r ∪ D_f, in the configured order."""
        if self.order == "authors":
            forget = class_grouped(data.forget)
            full = union(class_grouped(data.retain), forget)
            return (forget.batches(self.batch_size, shuffle=False),
                    full.batches(self.batch_size, shuffle=False))
        full = union(data.retain, data.forget)
        return (data.forget.batches(self.batch_size, shuffle=True, seed=data.seed),
                full.batches(self.batch_size, shuffle=True, seed=data.seed))

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        forget, full = self.loaders(data)
        imp_f = importance(model, forget, self.loss, self.transform)
        imp_d = importance(model, full, self.loss, self.transform)
        alpha = self.resolved_alpha(model)
        selected = dampen(model, imp_f, imp_d, alpha, self.lam)
        n = {k: p.numel() for k, p in model.named_parameters() if k in selected}
        count = sum(selected[k] * n[k] for k in n)
        self.extra_metrics["ssd/selected"] = float(round(count))
        self.extra_metrics["ssd/selected_frac"] = count / max(sum(n.values()), 1)
        self.extra_metrics["ssd/alpha"] = alpha
        return model.eval()
