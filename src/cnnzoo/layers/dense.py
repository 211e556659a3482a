"""The blocks of DenseNet (Huang, Liu, van der Maaten, Weinberger, CVPR 2017, §3): the dense layer (with and
without the bottleneck), the dense block and the transition.

Details from the authors' Torch code (liuzhuang13/DenseNet ``models/densenet.lua``) where the paper is silent: the
transition is BN-ReLU-conv1x1-avgpool (the paper's text omits the ReLU; torchvision has it too), convolutions have no
bias, and ``dropout`` follows every convolution except the network's first (§4.2), the bottleneck 1x1 and the
transition conv included.

``memory_efficient``: recompute the concatenation + first BN-ReLU-conv of each layer in the backward pass instead of
storing it (Pleiss et al., "Memory-Efficient Implementation of DenseNets", arXiv:1707.06990; torchvision's
``memory_efficient``). Outputs, gradients and BN running statistics equal the plain path.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


def _dropout(p: float) -> nn.Module:
    return nn.Dropout(p) if p > 0 else nn.Identity()


class DenseLayer(nn.Module):
    """BN-ReLU-conv3x3(k); with the bottleneck BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k) (§3).

    Called with all earlier feature maps of the block; the first BN reads their concatenation.
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        *,
        bottleneck: bool,
        bn_size: int,
        dropout: float,
        memory_efficient: bool,
    ) -> None:
        super().__init__()
        first_out = bn_size * growth_rate if bottleneck else growth_rate
        kernel = 1 if bottleneck else 3
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, first_out, kernel, padding=kernel // 2, bias=False)
        self.drop1 = _dropout(dropout)
        if bottleneck:
            self.norm2 = nn.BatchNorm2d(first_out)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(first_out, growth_rate, 3, padding=1, bias=False)
            self.drop2 = _dropout(dropout)
        self.bottleneck = bottleneck
        self.memory_efficient = memory_efficient

    def _first_unit(self, *features: Tensor) -> Tensor:
        return self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))

    @contextmanager
    def _norm1_stats_frozen(self) -> Iterator[None]:
        # The recomputation must not update norm1's running statistics a second time (the authors' optMemory=4
        # saves and restores them for the same reason). Momentum 0 keeps them (running = 1*running + 0*batch)
        # while the recomputed graph stays identical to the forward's; the batch counter is put back.
        momentum, batches = self.norm1.momentum, self.norm1.num_batches_tracked.clone()
        self.norm1.momentum = 0.0
        try:
            yield
        finally:
            self.norm1.momentum = momentum
            self.norm1.num_batches_tracked.copy_(batches)

    def forward(self, *features: Tensor) -> Tensor:
        if self.memory_efficient and torch.is_grad_enabled() and any(f.requires_grad for f in features):
            # Pleiss et al. 2017: the concatenation and the first BN-ReLU-conv are recomputed in backward.
            out = checkpoint(
                self._first_unit,
                *features,
                use_reentrant=False,
                context_fn=lambda: (nullcontext(), self._norm1_stats_frozen()),
            )
        else:
            out = self._first_unit(*features)
        out = self.drop1(out)
        if self.bottleneck:
            out = self.drop2(self.conv2(self.relu2(self.norm2(out))))
        return out


class DenseBlock(nn.ModuleDict):
    """Layer l reads [x_0, x_1, ..., x_{l-1}] (§3 "Dense connectivity"); the block outputs all of them concatenated."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, **layer_options: Any) -> None:
        super().__init__(
            (f"denselayer{i + 1}", DenseLayer(in_channels + i * growth_rate, growth_rate, **layer_options))
            for i in range(num_layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(*features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1-avgpool2x2 between dense blocks (§3 "Pooling layers"; ReLU as in the authors' code)."""

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float = 0.0) -> None:
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(in_channels),
                relu=nn.ReLU(inplace=True),
                conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
                drop=_dropout(dropout),
                pool=nn.AvgPool2d(2, stride=2),
            )
        )
