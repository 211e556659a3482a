"""The two weight initialisations the papers name: Caffe's "xavier" filler and He et al.'s fan-out normal."""

from __future__ import annotations

import math

from torch import Tensor, nn


def caffe_xavier_(weight: Tensor) -> Tensor:
    """Caffe's "xavier" filler (``variance_norm: FAN_IN``, its default): U(-sqrt(3 / fan_in), +sqrt(3 / fan_in)),
    variance 1 / fan_in. Not PyTorch's ``xavier_uniform_`` (Glorot & Bengio 2010 average fan-in and fan-out).
    Used by the Caffe models of GoogLeNet, SqueezeNet and FractalNet."""
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    bound = math.sqrt(3.0 / fan_in)
    return nn.init.uniform_(weight, -bound, bound)


def init_he_(model: nn.Module, *, zero_linear_bias: bool = False) -> None:
    """He et al. 2015 ("Delving Deep into Rectifiers", eq. 14 in its backward form) for every conv:
    N(0, 2 / (k * k * out_channels)), i.e. ``kaiming_normal_(mode="fan_out")`` as fb.resnet.torch, the
    resnet-1k-layers, WRN and DenseNet code and torchvision do. Batch norms start at weight 1, bias 0; linear layers
    keep PyTorch's default (``zero_linear_bias``: bias 0, as DenseNet's ``densenet.lua``)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif zero_linear_bias and isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
