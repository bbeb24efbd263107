"""ResNets with the CIFAR stem (3x3 stride-1 first convolution, no max-pool; He et al. 2016, Sec. 4.2)."""

import torchvision
from torch import nn


def _cifar_stem(model: nn.Module, channels: int) -> nn.Module:
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.feature_layer = "fc"
    model.feature_source = None
    return model


def resnet18(in_shape, num_classes: int) -> nn.Module:
    return _cifar_stem(torchvision.models.resnet18(num_classes=num_classes), in_shape[0])


def resnet50(in_shape, num_classes: int) -> nn.Module:
    return _cifar_stem(torchvision.models.resnet50(num_classes=num_classes), in_shape[0])
