"""torchvision's ResNet-family state-dict keys -> ours (ResNet, ResNeXt, Wide ResNet; the CIFAR ResNets of
akamaster/pytorch_resnet_cifar10): the block-internal names already match (`cnnzoo.layers.residual`), only the
top-level modules are renamed."""

from __future__ import annotations

import re
from typing import Any

_TORCHVISION_RENAMES = (
    (re.compile(r"^conv1\."), "stem.conv."),
    (re.compile(r"^bn1\."), "stem.bn."),
    (re.compile(r"^layer(\d+)\."), r"stages.stage\1."),
    (re.compile(r"\.downsample\."), ".shortcut."),
    (re.compile(r"^fc\."), "head.fc."),
    (re.compile(r"^linear\."), "head.fc."),  # akamaster/pytorch_resnet_cifar10's CIFAR ResNets
)


def torchvision_key_map(state: dict[str, Any]) -> dict[str, Any]:
    """torchvision ResNet/ResNeXt/Wide-ResNet keys -> ours: conv1/bn1 -> stem, layerN -> stages.stageN,
    downsample -> shortcut, fc -> head.fc; the block-internal names (conv1, bn1, ...) are already the same."""
    mapped = {}
    for key, value in state.items():
        for pattern, replacement in _TORCHVISION_RENAMES:
            key = pattern.sub(replacement, key)
        mapped[key] = value
    return mapped
