import math
from collections import OrderedDict

from torch import nn


def mlp(in_shape, num_classes: int, hidden: tuple[int, ...] = (256, 256)) -> nn.Module:
    """A ReLU multilayer perceptron on flattened images; features = output of the last hidden layer."""
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    width = math.prod(in_shape)
    for i, h in enumerate(hidden):
        layers += [(f"fc{i + 1}", nn.Linear(width, h)), (f"relu{i + 1}", nn.ReLU())]
        width = h
    layers.append(("head", nn.Linear(width, num_classes)))
    model = nn.Sequential(OrderedDict(layers))
    model.feature_layer = "head"
    model.feature_source = f"fc{len(hidden)}" if hidden else None
    return model
