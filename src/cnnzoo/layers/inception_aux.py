"""The auxiliary classifier of GoogLeNet: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015
(arXiv:1409.4842), §5."""

from __future__ import annotations

import torch
from torch import nn


class InceptionAux(nn.Module):
    """§5 auxiliary classifier: 5x5/3 average pool -> 1x1 conv 128 + ReLU -> FC 1024 + ReLU -> dropout 0.7 -> FC."""

    def __init__(self, in_channels: int, num_classes: int, *, pool: nn.Module, conv_block, dropout: float) -> None:
        super().__init__()
        self.pool = pool  # -> 4x4 (§5: "4x4x512 output for the (4a), and 4x4x528 for the (4d) stage")
        self.conv = conv_block(in_channels, 128, 1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x))
        x = self.relu(self.fc1(self.flatten(x)))
        return self.fc2(self.dropout(x))
