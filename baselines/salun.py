"""SalUn (Fan et al. ICLR'24, "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency",
Eq. 5-6): the saliency mask m = 1[|∇_θ ℓ_f(θ; D_f)| in the top ``mask_ratio``] selects the weights that
matter for the forget set; random-label training then updates only those weights. By default the mask and
the update follow the authors' code (OPTML-Group/Unlearn-Saliency@a6e89fd, Classification/
generate_mask.py and unlearn/RL.py); ``mask_reduction=sum`` with ``relabel=union_retain_once`` is the
batch-independent variant (``conf/method/salun_retain_labels.yaml``)."""

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import AUGMENT, RELABEL, SGDMethod, random_label_batches, resolve_augment, sgd_hparams
from unlearn_bench.data.batches import Subset
from unlearn_bench.methods.base import Regime, UnlearnData
from unlearn_bench.methods.hparams import Choice, Float
from unlearn_bench.train.loop import cross_entropy

MASK_REDUCTIONS = ("batch_mean", "sum")


def top_fraction(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Boolean mask of the ``int(ratio·N)`` largest scores (the authors' count, generate_mask.py:60). Ties
    are broken by position, the earlier flat index (parameters in ``named_parameters`` order) winning: a
    stable descending sort. The authors' ``torch.argsort`` (:63) leaves tie order to the backend, and many
    weights tie (every weight with exactly zero forget gradient), so their mask is arbitrary there."""
    order = torch.sort(scores, descending=True, stable=True).indices
    keep = torch.zeros_like(scores, dtype=torch.bool)
    keep[order[:int(ratio * scores.numel())]] = True
    return keep


def saliency_mask(model: nn.Module, forget: Subset, ratio: float, batch_size: int,
                  reduction: str = "batch_mean", seed: int = 0,
                  augment: bool = False) -> dict[str, torch.Tensor]:
    """Boolean mask per parameter over the global top ``ratio`` of |g|, in eval mode. ``batch_mean`` (the
    authors', generate_mask.py:30-48): g sums the gradients of each batch's MEAN cross-entropy over a
    seeded shuffle of D_f, so a short last batch weighs more per sample. ``sum``: g is the gradient of the
    summed cross-entropy over D_f, independent of batching."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    model.eval()  # generate_mask.py:25
    shuffle = reduction == "batch_mean"
    for x, y in forget.batches(batch_size, shuffle=shuffle, seed=seed, augment=augment):
        F.cross_entropy(model(x), y, reduction="mean" if shuffle else "sum").backward()
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).abs().flatten()
                      for p in params.values()])
    keep = top_fraction(flat, ratio)
    model.zero_grad(set_to_none=True)
    masks, start = {}, 0
    for n, p in params.items():
        masks[n] = keep[start:start + p.numel()].view_as(p)
        start += p.numel()
    return masks


class SalUn(SGDMethod):
    """Weights outside the mask stay bit-identical: their gradients are zeroed by hooks and, since SGD
    momentum and weight decay would still move them, they are copied back after every optimizer step (as
    the authors' RL.py:17-34 does since a6e89fd)."""

    regime = Regime.FULL
    hparams = {"mask_ratio": Float(gt=0, le=1).tune(0.1, 0.9), **sgd_hparams(lr=(1e-4, 1e-1)),
               "mask_reduction": Choice(*MASK_REDUCTIONS), "relabel": RELABEL, "augment": AUGMENT}

    def __init__(self, mask_ratio: float = 0.5, epochs: int = 10, lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 5e-4, batch_size: int = 256, mask_reduction: str = "batch_mean",
                 relabel: str = "auto", augment: str | bool = "auto") -> None:
        super().__init__(epochs, lr, momentum, weight_decay, batch_size)
        self.mask_ratio, self.mask_reduction = mask_ratio, mask_reduction
        self.relabel, self.augment = relabel, augment
        self.masks: dict[str, torch.Tensor] = {}

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        augment = resolve_augment(self.augment, data)
        self.masks = saliency_mask(model, data.forget, self.mask_ratio, self.batch_size, self.mask_reduction,
                                   data.seed, augment)
        params = dict(model.named_parameters())
        frozen = {n: params[n].detach().clone() for n in self.masks}
        hooks = [params[n].register_hook(lambda g, m=m: g * m) for n, m in self.masks.items()]

        @torch.no_grad()
        def restore(model):
            for n, m in self.masks.items():
                params[n].copy_(torch.where(m, params[n], frozen[n]))

        batches = random_label_batches(data, self.relabel, self.batch_size, augment)
        try:
            self.train_sgd(model, batches, cross_entropy(), data, after_step=restore)
        finally:
            for h in hooks:
                h.remove()
        self.extra_metrics[f"{data.method}/mask_fraction"] = (
            sum(int(m.sum()) for m in self.masks.values()) / sum(m.numel() for m in self.masks.values()))
        return model
