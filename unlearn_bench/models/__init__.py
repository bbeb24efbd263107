"""Model factories. Every factory takes ``in_shape=(C, H, W)`` and ``num_classes`` and returns an
``nn.Module`` that maps normalised float images to logits and names two layers:

- ``feature_layer``: dotted name of the last ``nn.Linear`` (the classifier); its *input* is the feature
  vector that relevance methods score, one value per unit;
- ``feature_source``: dotted name of the ``nn.Linear`` whose (ReLU'd) output those features are, or
  ``None`` when the features come from pooling (ResNets, ViT);
- optionally ``lra_npp_path``: the neuronal path LRA-NPP's ``path: auto`` edits in this model (ViT:
  ``target_out``).
"""

from unlearn_bench.models.convnets import cnn_paper, lenet5, vgg16_bn
from unlearn_bench.models.mlp import mlp
from unlearn_bench.models.resnet import resnet18, resnet50
from unlearn_bench.models.vit import vit_tiny

__all__ = ["mlp", "cnn_paper", "lenet5", "vgg16_bn", "resnet18", "resnet50", "vit_tiny", "get_layer"]


def get_layer(model, name: str):
    """The submodule called ``name`` (as in ``named_modules()``)."""
    return dict(model.named_modules())[name]
