"""The Inception module of Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (arXiv:1409.4842), §4, Fig. 2.

Four parallel branches over the same input, concatenated along channels:

    branch1: 1x1 conv                                        (#1x1)
    branch2: 1x1 conv (#3x3 reduce) -> 3x3 conv              (#3x3)
    branch3: 1x1 conv (#5x5 reduce) -> 5x5 conv              (#5x5)
    branch4: 3x3/1 max pool -> 1x1 conv (pool proj)

``naive=True`` builds Fig. 2(a), the version without dimension reductions: the three convolutions see the full input
and the pooling branch is passed through unprojected, so the output depth is ``ch1x1 + ch3x3 + ch5x5 + in_channels``
and can only grow from module to module (the lecture's example: 28x28x256 in, 28x28x672 out, 854M MACs).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .conv import ConvReLU

ConvBlock = Callable[..., nn.Module]  # called as conv_block(in_channels, out_channels, kernel_size, padding=...)


class InceptionModule(nn.Module):
    """One Inception module. Arguments follow the columns of Szegedy et al. Table 1.

    The submodule names (``branch1`` .. ``branch4``) are torchvision's, so a torchvision-compatible GoogLeNet built
    from this block loads torchvision state dicts unchanged.

    Args:
        ch3x3_reduce, ch5x5_reduce, pool_proj: the 1x1 reductions; ``None`` (and only ``None``) with ``naive=True``.
        naive: Fig. 2(a), no reductions and no pool projection.
        conv_block: conv -> (norm) -> ReLU unit; the paper's is conv with bias -> ReLU (``ConvReLU``).
        ch5x5_kernel_size: 5 in the paper; torchvision's GoogLeNet uses 3 here (its documented "known bug",
            pytorch/vision#906), which its torchvision-compatible variant reproduces.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3_reduce: int | None,
        ch3x3: int,
        ch5x5_reduce: int | None,
        ch5x5: int,
        pool_proj: int | None,
        *,
        naive: bool = False,
        conv_block: ConvBlock = ConvReLU,
        ch5x5_kernel_size: int = 5,
    ) -> None:
        super().__init__()
        reductions = (ch3x3_reduce, ch5x5_reduce, pool_proj)
        if naive and any(r is not None for r in reductions):
            raise ValueError("the naive Inception module has no 1x1 reductions and no pool projection: pass None")
        if not naive and any(r is None for r in reductions):
            raise ValueError("ch3x3_reduce, ch5x5_reduce and pool_proj are required unless naive=True")
        k5 = ch5x5_kernel_size
        self.naive = naive
        self.branch1 = conv_block(in_channels, ch1x1, 1)
        # §4: the pooling path is 3x3 max pooling with stride 1 (padding 1 keeps the spatial size for the concat)
        pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        if naive:  # Fig. 2(a)
            self.branch2 = conv_block(in_channels, ch3x3, 3, padding=1)
            self.branch3 = conv_block(in_channels, ch5x5, k5, padding=k5 // 2)
            self.branch4 = pool
            self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels
        else:  # Fig. 2(b): 1x1 convolutions "compute reductions before the expensive 3x3 and 5x5 convolutions"
            self.branch2 = nn.Sequential(
                conv_block(in_channels, ch3x3_reduce, 1), conv_block(ch3x3_reduce, ch3x3, 3, padding=1)
            )
            self.branch3 = nn.Sequential(
                conv_block(in_channels, ch5x5_reduce, 1), conv_block(ch5x5_reduce, ch5x5, k5, padding=k5 // 2)
            )
            self.branch4 = nn.Sequential(pool, conv_block(in_channels, pool_proj, 1))
            self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)
