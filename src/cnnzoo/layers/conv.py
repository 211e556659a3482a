"""Convolution + activation units, and the bias-free convs of the batch-norm papers, used across families."""

from __future__ import annotations

import torch
from torch import nn


class ConvReLU(nn.Sequential):
    """conv -> ReLU, with a bias: the unit of the pre-batch-norm papers (AlexNet, ZFNet, VGG, NiN, GoogLeNet)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, groups: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups),
            nn.ReLU(inplace=True),
        )


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 conv, padding 1, no bias (a batch norm follows or precedes every conv of these papers)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
