"""Loss-Free SSD (LF-SSD), Foster, Schoepf & Brintrup, "Loss-Free Machine Unlearning", ICLR'24 Tiny Paper.

SSD with label-free importance: the absolute gradient of the squared l2 norm of the model's output,
|∂‖f(x)‖²/∂θ|, averaged over batches (a first-order sensitivity in the spirit of Memory Aware Synapses).
Selection and dampening are SSD's (eqs. 2-3), with the same α and λ.

Regime: the paper compares the forget-set importance with the importance on the *full training data*, so
LF-SSD reads D_r (without its labels) and is declared ``full``. It is "label-free", not "retain-free": no
faithful reference importance exists from D_f alone, and the unseen pool holds only forget-class images.
"""

from __future__ import annotations

from baselines.ssd import SSD


def output_norm_loss(model, batch):
    x, _ = batch  # labels are never used
    return model(x).float().pow(2).sum(dim=1).mean()


class LFSSD(SSD):
    """LF-SSD (Foster et al. 2024): SSD with |grad ‖f(x)‖²| importances, computed without labels."""

    transform = "abs"

    def loss(self, model, batch):
        return output_norm_loss(model, batch)
