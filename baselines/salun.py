"""SalUn (Fan et al. ICLR'24, "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency",
Eq. 5-6): the saliency mask m = 1[|∇_θ CE(θ; D_f)| in the top ``mask_ratio``] selects the weights that
matter for the forget set; random-label training then updates only those weights."""

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import SGDMethod, relabelled_union
from unlearn_bench.errors import ConfigError
from unlearn_bench.methods.base import Regime, Subset, UnlearnData
from unlearn_bench.training import cross_entropy


def saliency_mask(model: nn.Module, forget: Subset, ratio: float, batch_size: int) -> dict[str, torch.Tensor]:
    """Boolean mask per parameter: the global top ``ratio`` of |gradient of the summed CE over D_f|
    (exactly round(ratio·N) entries; ties broken by ``topk``)."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    model.eval()  # the mask describes the trained model, not dropout/batch-stat noise
    for x, y in forget.batches(batch_size, shuffle=False):
        F.cross_entropy(model(x), y, reduction="sum").backward()
    flat = torch.cat([p.grad.abs().flatten() for p in params.values()])
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[torch.topk(flat, round(ratio * flat.numel()), sorted=False).indices] = True
    model.zero_grad(set_to_none=True)
    masks, start = {}, 0
    for n, p in params.items():
        masks[n] = keep[start:start + p.numel()].view_as(p)
        start += p.numel()
    return masks


class SalUn(SGDMethod):
    """Weights outside the mask stay bit-identical: their gradients are zeroed by hooks and, since SGD
    momentum and weight decay would still move them, they are copied back after every optimizer step."""

    regime = Regime.FULL

    def __init__(self, mask_ratio: float = 0.5, epochs: int = 10, lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 5e-4, batch_size: int = 128) -> None:
        super().__init__(epochs, lr, momentum, weight_decay, batch_size)
        self.mask_ratio = mask_ratio
        self.masks: dict[str, torch.Tensor] = {}

    def validate(self, model, info) -> None:
        super().validate(model, info)
        if not 0 < self.mask_ratio <= 1:
            raise ConfigError(f"method.mask_ratio={self.mask_ratio} must be in (0, 1]; fix: e.g. 0.5")

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        self.masks = saliency_mask(model, data.forget, self.mask_ratio, self.batch_size)
        params = dict(model.named_parameters())
        frozen = {n: params[n].detach().clone() for n in self.masks}
        hooks = [params[n].register_hook(lambda g, m=m: g * m) for n, m in self.masks.items()]

        @torch.no_grad()
        def restore(model):
            for n, m in self.masks.items():
                params[n].copy_(torch.where(m, params[n], frozen[n]))

        union = relabelled_union(data.retain, data.forget, data.num_classes, data.forget_classes, data.seed)
        batches = union.batches(self.batch_size, shuffle=True, seed=data.seed)
        try:
            self.train_sgd(model, batches, cross_entropy(), data, after_step=restore)
        finally:
            for h in hooks:
                h.remove()
        self.extra_metrics[f"{data.method}/mask_fraction"] = (
            sum(int(m.sum()) for m in self.masks.values()) / sum(m.numel() for m in self.masks.values()))
        return model
