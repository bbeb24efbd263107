"""Loss-Free SSD (LF-SSD), Foster, Schoepf & Brintrup, "Loss-Free Machine Unlearning", ICLR'24 Tiny Paper.

SSD with label-free importance: the absolute gradient of the batch mean of the squared l2 norm of the
model's output, |∂ mean‖f(x)‖²/∂θ|, summed over batches and divided by their number (a first-order
sensitivity in the spirit of Memory Aware Synapses). The authors publish it as a two-line change to SSD's
importance (if-loops/selective-synaptic-dampening@cdfdc0e README.md:21-35), so everything else is SSD's:
selection and dampening (eqs. 2-3), α (``auto``: 10, 5 on a ViT), λ, and the loaders (``order="authors"``:
unshuffled, class-grouped, D_r then D_f, batches of 64). The class grouping is the only use of labels,
and it is the authors' loaders' order, not an input to the importance.

Regime: the paper compares the forget-set importance with the importance on the *full training data*, so
LF-SSD reads D_r (its labels only order the loaders) and is declared ``full``. It is "label-free", not
"retain-free": no
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
