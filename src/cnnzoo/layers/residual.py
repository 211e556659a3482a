"""The residual blocks every residual family builds from: one basic block, one bottleneck, their pre-activation
forms, one stage builder, stems and heads (shortcuts: `cnnzoo.layers.shortcut`; He initialisation:
`cnnzoo.layers.init`).

Families (ResNet, pre-activation ResNet, Wide ResNet, ResNeXt, Stochastic Depth) differ by spec, not by code.
Module names follow torchvision's ResNet (``conv1``/``bn1``/..., ``shortcut`` for its ``downsample``) so that a
torchvision state dict maps onto a post-activation ResNet by renaming the top-level modules only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from .conv import conv1x1, conv3x3
from .drop_path import branch_dropped
from .shortcut import ShortcutType, make_shortcut

PreActInput = Literal["residual", "shared", "none"]


def _drop_path_or_identity(drop_path: nn.Module | None) -> nn.Module:
    return nn.Identity() if drop_path is None else drop_path


def _post_activation_shortcut(
    in_channels: int, out_channels: int, stride: int, kind: ShortcutType | None, drop_path: nn.Module | None
) -> nn.Module | None:
    """The shortcut of a post-activation block, or None for the block of a plain network (He et al. §3.3), which
    has no shortcut and hence no branch that drop path could drop."""
    if kind is not None:
        return make_shortcut(in_channels, out_channels, stride, kind, norm=True)
    if drop_path is not None and not isinstance(drop_path, nn.Identity):
        raise ValueError("a plain block (shortcut=None) has no residual branch to drop: drop_path_rate must be 0")
    return None


class BasicBlock(nn.Module):
    """He et al. 2016 Fig. 2 / Fig. 5 left: conv3x3-BN-ReLU-conv3x3-BN, added to the shortcut, then ReLU.

    ``shortcut=None`` is the plain block of He et al. §3.3 (Fig. 3 middle): the same layers without the shortcut,
    so the block outputs ReLU(F(x)).
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        shortcut: ShortcutType | None = "B",
        drop_path: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = _post_activation_shortcut(in_channels, out_channels, stride, shortcut, drop_path)
        self.drop_path = _drop_path_or_identity(drop_path)
        self.relu_out = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if branch_dropped(self.drop_path):  # stochastic depth: the dropped block is its shortcut alone, not run
            return torch.relu(self.shortcut(x))
        residual = self.relu1(self.bn1(self.conv1(x)))
        residual = self.bn2(self.conv2(residual))
        if self.shortcut is None:  # plain block (He et al. §3.3): y = ReLU(F(x))
            return self.relu_out(residual)
        return self.relu_out(self.shortcut(x) + self.drop_path(residual))  # He et al. eq. (1)/(2): ReLU(F(x) + x)


class Bottleneck(nn.Module):
    """He et al. 2016 Fig. 5 right: 1x1 reduce, 3x3, 1x1 expand (x4), BN after each conv, ReLU after the addition.

    Args:
        stride_in_1x1: the paper (and its Caffe models) put the stride of a downsampling block on the first 1x1
            ("v1"); fb.resnet.torch, torchvision and ResNeXt (Xie et al. §4) put it on the 3x3 ("v1.5"), which
            costs more multiply-adds (ResNet-50: 4.09 vs 3.86 G) and has the same parameters.
        cardinality: groups of the 3x3 (Xie et al. 2017, form (c)); 1 for ResNet.
        bottleneck_width: Xie et al.'s d, the width of one group at the first (64-wide) stage; it doubles with the
            stage widths. 64 with cardinality 1 is ResNet; 128 is WRN-50-2's doubled 3x3.
        shortcut: as in `BasicBlock`; None is the plain block of He et al. §3.3 (output ReLU(F(x))).
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        shortcut: ShortcutType | None = "B",
        stride_in_1x1: bool = True,
        cardinality: int = 1,
        bottleneck_width: int = 64,
        drop_path: nn.Module | None = None,
    ) -> None:
        super().__init__()
        width = out_channels // self.expansion * bottleneck_width // 64 * cardinality
        self.conv1 = conv1x1(in_channels, width, stride if stride_in_1x1 else 1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width, 1 if stride_in_1x1 else stride, groups=cardinality)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = _post_activation_shortcut(in_channels, out_channels, stride, shortcut, drop_path)
        self.drop_path = _drop_path_or_identity(drop_path)
        self.relu_out = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if branch_dropped(self.drop_path):  # stochastic depth: the dropped block is its shortcut alone, not run
            return torch.relu(self.shortcut(x))
        residual = self.relu1(self.bn1(self.conv1(x)))
        residual = self.relu2(self.bn2(self.conv2(residual)))
        residual = self.bn3(self.conv3(residual))
        if self.shortcut is None:  # plain block (He et al. §3.3): y = ReLU(F(x))
            return self.relu_out(residual)
        return self.relu_out(self.shortcut(x) + self.drop_path(residual))  # He et al. eq. (1)/(2): ReLU(F(x) + x)


def _preact(channels: int, preact: PreActInput) -> tuple[nn.Module, nn.Module]:
    if preact == "none":
        return nn.Identity(), nn.Identity()
    if preact not in ("residual", "shared"):
        raise ValueError(f"preact must be 'residual', 'shared' or 'none', got {preact!r}")
    return nn.BatchNorm2d(channels), nn.ReLU(inplace=True)


class PreActBlock(nn.Module):
    """He et al. 2016b ("Identity Mappings") Fig. 4(e): BN-ReLU-conv3x3-BN-ReLU-conv3x3, nothing after the addition.

    Args:
        preact: where the unit's first BN-ReLU sits. ``"residual"``: on the residual path only (ordinary units).
            ``"shared"``: before the split, so the shortcut sees the activated input: the first unit of a stage
            (He et al. 2016b appendix; ``common BN, ReLU`` in KaimingHe/resnet-1k-layers; Zagoruyko & Komodakis).
            ``"none"``: the unit has no BN-ReLU of its own because the stem's precedes it (ImageNet stem).
        dropout: Zagoruyko & Komodakis §2.4, dropout between the convs, after the second BN-ReLU (their
            ``wide-resnet.lua``); 0 is the plain unit.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        shortcut: ShortcutType = "B",
        preact: PreActInput = "residual",
        dropout: float = 0.0,
        drop_path: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.shared_preact = preact != "residual"
        self.bn1, self.relu1 = _preact(in_channels, preact)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut, norm=False)
        self.drop_path = _drop_path_or_identity(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if branch_dropped(self.drop_path):  # stochastic depth: the dropped block is its shortcut alone, not run
            return self.shortcut(self.relu1(self.bn1(x)) if self.shared_preact else x)
        activated = self.relu1(self.bn1(x))
        shortcut = self.shortcut(activated if self.shared_preact else x)
        residual = self.conv1(activated)
        residual = self.conv2(self.dropout(self.relu2(self.bn2(residual))))
        return shortcut + self.drop_path(residual)


class PreActBottleneck(nn.Module):
    """He et al. 2016b Fig. 4(e), bottleneck form: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (x4); identity after the sum.

    ``preact`` as in `PreActBlock`. ``stride_in_1x1`` as in `Bottleneck`: KaimingHe/resnet-1k-layers strides the
    first 1x1 (the default).
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        shortcut: ShortcutType = "B",
        preact: PreActInput = "residual",
        stride_in_1x1: bool = True,
        drop_path: nn.Module | None = None,
    ) -> None:
        super().__init__()
        width = out_channels // self.expansion
        self.shared_preact = preact != "residual"
        self.bn1, self.relu1 = _preact(in_channels, preact)
        self.conv1 = conv1x1(in_channels, width, stride if stride_in_1x1 else 1)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width, 1 if stride_in_1x1 else stride)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(width, out_channels)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut, norm=False)
        self.drop_path = _drop_path_or_identity(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if branch_dropped(self.drop_path):  # stochastic depth: the dropped block is its shortcut alone, not run
            return self.shortcut(self.relu1(self.bn1(x)) if self.shared_preact else x)
        activated = self.relu1(self.bn1(x))
        shortcut = self.shortcut(activated if self.shared_preact else x)
        residual = self.conv1(activated)
        residual = self.conv2(self.relu2(self.bn2(residual)))
        residual = self.conv3(self.relu3(self.bn3(residual)))
        return shortcut + self.drop_path(residual)


def make_stage(
    block: type[nn.Module],
    in_channels: int,
    out_channels: int,
    num_blocks: int,
    *,
    stride: int = 1,
    drop_paths: Sequence[nn.Module] | None = None,
    first_block: Mapping[str, Any] | None = None,
    **block_kwargs: Any,
) -> nn.Sequential:
    """``num_blocks`` residual blocks at one resolution; the first one changes the shape (``stride``,
    ``in_channels -> out_channels``) and takes ``first_block`` keyword overrides. ``drop_paths`` gives each block its
    branch-dropping module (see `cnnzoo.layers.drop_path`)."""
    drops: list[nn.Module | None] = list(drop_paths) if drop_paths is not None else [None] * num_blocks
    if len(drops) != num_blocks:
        raise ValueError(f"{len(drops)} drop-path modules for {num_blocks} blocks")
    first_kwargs = {**block_kwargs, **(first_block or {})}
    blocks = [block(in_channels, out_channels, stride=stride, drop_path=drops[0], **first_kwargs)]
    blocks += [block(out_channels, out_channels, drop_path=drop, **block_kwargs) for drop in drops[1:]]
    return nn.Sequential(*blocks)


def make_stem(
    kind: Literal["imagenet", "cifar"], in_channels: int, out_channels: int, *, norm: bool = True
) -> nn.Sequential:
    """ImageNet: conv7x7/2-BN-ReLU-maxpool3x3/2 (He et al. Table 1). CIFAR: conv3x3 (He et al. §4.2), followed by
    BN-ReLU when ``norm`` (post-activation nets); pre-activation nets leave it to their first unit."""
    if kind == "imagenet":
        layers = OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, 7, stride=2, padding=3, bias=False),
            bn=nn.BatchNorm2d(out_channels),
            relu=nn.ReLU(inplace=True),
            pool=nn.MaxPool2d(3, stride=2, padding=1),
        )
    elif kind == "cifar":
        layers = OrderedDict(conv=conv3x3(in_channels, out_channels))
        if norm:
            layers.update(bn=nn.BatchNorm2d(out_channels), relu=nn.ReLU(inplace=True))
    else:
        raise ValueError(f"stem must be 'imagenet' or 'cifar', got {kind!r}")
    return nn.Sequential(layers)


def make_head(in_channels: int, num_classes: int, *, preact: bool = False) -> nn.Sequential:
    """Global average pooling and the classifier; pre-activation nets first apply the final BN-ReLU that the last
    unit lacks (He et al. 2016b appendix)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if preact:
        layers.update(bn=nn.BatchNorm2d(in_channels), relu=nn.ReLU(inplace=True))
    layers.update(pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(in_channels, num_classes))
    return nn.Sequential(layers)
