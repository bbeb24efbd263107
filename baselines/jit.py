"""JiT, Foster, Schoepf & Brintrup, "Zero-Shot Machine Unlearning at Scale via Lipschitz Regularization",
2024 (arXiv:2402.01401; code: jwf40/Zeroshot-Unlearning-At-Scale@f7e3f20, src/lipschitz.py:282-319).

For each batch of images x, N noisy copies x'_i = clamp(x + ξ_i, min x, max x), ξ_i ~ N(0, σ²I), are
drawn (the clamp is to the whole batch's range, ``AddGaussianNoise``, lipschitz.py:43-48) and the model
takes one SGD step on Σ_samples (1/N) Σ_i ‖f(x) − f(x'_i)‖₂ / ‖x − x'_i‖₂ (lipschitz.py:291-311: summed
over the batch, averaged over the copies, the denominator measured after the clamp): smoothing the output
around forget samples erases the sharp, memorised response to them. The noisy outputs f(x'_i) are
constants (no gradient flows through them), so the step pulls f(x) towards its noisy neighbourhood. One
unshuffled pass in batches of 128 (forget_full_class_main.py:42, :133). Per architecture
(forget_full_class_main.py:141-153): ViT σ = 0.8, lr = 1.5; otherwise the VGG16 values σ = 0.5,
lr = 3e-4; ``null`` picks them from the model (``ViT`` in this harness or not).

Data (``source``): the authors apply it to the forget-set images themselves (no retain data: their
"zero-shot"). ``source: unseen`` (the default) runs it in this harness's zero-shot regime instead, on the
unseen forget-class pool that LRA-NPP also reads, so the two compete on the same information;
``source: forget`` is the authors' setting (forget-only regime, the ``jit_forget`` row).

The model stays in eval mode while it is smoothed (the authors' stays in train mode: it is never switched
to eval before the step): a train-mode pass over a batch and its noisy copies would overwrite BatchNorm's
running statistics within a few dozen steps, which on BN models (VGG, ResNet) changes forget and retain
accuracy on its own, even at a learning rate of 0.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearn_bench.methods.base import Method, Regime, UnlearnData
from unlearn_bench.methods.hparams import Choice, Float, Int
from unlearn_bench.models.vit import ViT

# forget_full_class_main.py:141-153 of jwf40/Zeroshot-Unlearning-At-Scale@f7e3f20: (lr, noise_std)
PER_ARCH = {"vit": (1.5, 0.8), "other": (3e-4, 0.5)}


def lipschitz_loss(model: nn.Module, x: torch.Tensor, copies: int, noise_std: float) -> torch.Tensor:
    """The authors' step loss: Σ over samples of the mean over copies of ‖f(x) − f(x')‖ / ‖x − x'‖, with
    x' = x + noise clamped to the batch's [min, max] and the denominator taken after the clamp."""
    b = x.shape[0]
    noise = torch.randn(copies, *x.shape, device=x.device, dtype=x.dtype) * noise_std
    noisy = (x.unsqueeze(0) + noise).clamp(x.min(), x.max())
    clean = model(x).float()
    with torch.no_grad():  # the neighbours are targets, not paths for the gradient
        out = model(noisy.flatten(0, 1)).float().view(copies, b, -1)
    num = (out - clean.unsqueeze(0)).norm(dim=2)
    den = (noisy - x.unsqueeze(0)).flatten(2).float().norm(dim=2)
    return (num / den).sum(dim=1).mean()


class JiT(Method):
    """JiT (Foster et al. 2024): Lipschitz smoothing of the model around unseen forget-class images."""

    regime = Regime.ZERO_SHOT
    SOURCES = {"unseen": Regime.ZERO_SHOT, "forget": Regime.FORGET_ONLY}
    # null lr / noise_std: the authors' per-architecture values (PER_ARCH)
    hparams = {"lr": Float(gt=0, null=True), "noise_std": Float(gt=0, null=True), "copies": Int(ge=1),
               "epochs": Int(ge=1), "batch_size": Int(ge=1), "source": Choice(*SOURCES)}

    def __init__(self, lr: float | None = None, noise_std: float | None = None, copies: int = 25,
                 epochs: int = 1, batch_size: int = 128, source: str = "unseen"):
        super().__init__()
        self.lr = None if lr is None else float(lr)
        self.noise_std = None if noise_std is None else float(noise_std)
        self.copies = int(copies)
        self.epochs, self.batch_size, self.source = int(epochs), int(batch_size), str(source)
        if self.source in self.SOURCES:
            self.regime = self.SOURCES[self.source]

    def resolve(self, model: nn.Module | None) -> tuple[float, float]:
        """(lr, noise_std): the explicit values, else the authors' per-architecture ones."""
        lr, noise_std = PER_ARCH["vit" if isinstance(model, ViT) else "other"]
        return (lr if self.lr is None else self.lr), (noise_std if self.noise_std is None else self.noise_std)

    def unlearn(self, model: nn.Module, data: UnlearnData) -> nn.Module:
        lr, noise_std = self.resolve(model)

        def loss(m, batch):
            m.eval()  # BatchNorm statistics and dropout as at test time (see the module docstring)
            x, _ = batch
            return lipschitz_loss(m, x, self.copies, noise_std)

        images = data.unseen if self.source == "unseen" else data.forget
        curve = data.fit(model, images.batches(self.batch_size, shuffle=False, seed=data.seed), loss,
                         lambda p: torch.optim.SGD(p, lr=lr), epochs=self.epochs)
        self.extra_metrics["jit/final_ratio"] = curve[-1]
        return model.eval()
