"""The shortcuts of the residual blocks (He et al. 2016, §3.3): identity where the shape is kept, option A
(zero-padded identity) or option B (1x1 projection) where it changes."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .conv import conv1x1

ShortcutType = Literal["A", "A_avg", "A_split", "B"]


class ZeroPadShortcut(nn.Module):
    """Option A of He et al. 2016 §3.3: an identity shortcut whose extra output channels are zeros.

    He et al. §4.2 subsample with stride 2 (``x[:, :, ::2, ::2]``, a 1x1 pooling window); the Stochastic Depth code
    (``ResidualDrop.lua``) averages 2x2 windows instead (``avg_pool=True``). The new channels are appended after the
    input's, as ``nn.Padding(1, out - in, 3)`` does in that code (the paper does not say where they go);
    ``split=True`` puts half of them before and half after, the layout of the widely used pretrained CIFAR ResNets
    (akamaster/pytorch_resnet_cifar10). Parameter-free.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, *, avg_pool: bool = False,
                 split: bool = False) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"option A cannot reduce channels ({in_channels} -> {out_channels})")
        self.extra_channels = out_channels - in_channels
        before = self.extra_channels // 2 if split else 0
        self.channel_pad = (before, self.extra_channels - before)
        if stride == 1:
            self.pool: nn.Module = nn.Identity()
        elif avg_pool:  # ceil_mode: an odd side gives the same size as the strided 3x3 conv of the residual branch
            self.pool = nn.AvgPool2d(stride, stride, ceil_mode=True)
        else:
            self.pool = nn.AvgPool2d(1, stride)  # a 1x1 window at stride s is x[:, :, ::s, ::s]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(self.pool(x), (0, 0, 0, 0, *self.channel_pad))

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra_channels}" + (", split" if self.channel_pad[0] else "")


def make_shortcut(in_channels: int, out_channels: int, stride: int, kind: ShortcutType, *, norm: bool) -> nn.Module:
    """Identity where the shape is kept; otherwise option A (zero padding), A_avg (Huang et al.'s 2x2 average) or
    option B (1x1 projection, He et al. eq. 2). ``norm`` adds the batch norm of post-activation projections;
    pre-activation projections take an already normalised input and have none (resnet-1k-layers, WRN code)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind in ("A", "A_avg", "A_split"):
        return ZeroPadShortcut(in_channels, out_channels, stride, avg_pool=kind == "A_avg", split=kind == "A_split")
    if kind != "B":
        raise ValueError(f"shortcut must be 'A', 'A_avg', 'A_split' or 'B', got {kind!r}")
    projection = conv1x1(in_channels, out_channels, stride)
    return nn.Sequential(projection, nn.BatchNorm2d(out_channels)) if norm else projection
