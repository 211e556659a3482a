"""Convolution + activation units used across families."""

from __future__ import annotations

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
