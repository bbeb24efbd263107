"""Plain convolutional classifiers: the LRA-NPP paper's CNN, LeNet-5 and a CIFAR-style VGG-16-BN."""

from collections import OrderedDict

import torch
from torch import nn


def _flat_width(features: nn.Module, in_shape) -> int:
    with torch.no_grad():
        return features.eval()(torch.zeros(1, *in_shape)).flatten(1).shape[1]


def _classifier(features: nn.Module, in_shape, hidden: list[int], num_classes: int) -> nn.Module:
    layers: list[tuple[str, nn.Module]] = [("features", features), ("flatten", nn.Flatten())]
    width = _flat_width(features, in_shape)
    for i, h in enumerate(hidden):
        layers += [(f"fc{i + 1}", nn.Linear(width, h)), (f"relu_fc{i + 1}", nn.ReLU())]
        width = h
    layers.append(("head", nn.Linear(width, num_classes)))
    model = nn.Sequential(OrderedDict(layers))
    model.feature_layer = "head"
    model.feature_source = f"fc{len(hidden)}"
    return model


def cnn_paper(in_shape, num_classes: int, hidden: int = 512) -> nn.Module:
    """The MNIST CNN of Chang et al. 2024 (LRA-NPP): Conv32-ReLU-Conv64-ReLU-MaxPool2-Flatten-
    Linear(->512)-ReLU-Linear(512->classes); 3x3 convolutions padded so 28x28 gives 64*14*14 = 12544."""
    c = in_shape[0]
    features = nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
    )
    return _classifier(features, in_shape, [hidden], num_classes)


def lenet5(in_shape, num_classes: int) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling; padding keeps small inputs valid."""
    c = in_shape[0]
    features = nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, padding=2 if min(in_shape[1:]) < 16 else 0), nn.ReLU(), nn.MaxPool2d(2),
    )
    return _classifier(features, in_shape, [120, 84], num_classes)


_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_bn(in_shape, num_classes: int, hidden: int = 512) -> nn.Module:
    """VGG-16 with BatchNorm (Simonyan & Zisserman 2015), CIFAR-style: a hidden FC layer before the
    classifier (the layer LRA-NPP perturbs); a max-pool is skipped once the map is 1x1."""
    layers: list[nn.Module] = []
    c, size = in_shape[0], min(in_shape[1:])
    for v in _VGG16:
        if v == "M":
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
            c = v
    return _classifier(nn.Sequential(*layers), in_shape, [hidden], num_classes)
