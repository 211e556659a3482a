"""Tensor facts the analyzer counts with: storage identity, the tensors a row outputs, bytes, and the bytes autograd
saves for backward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import tree_leaves


def storage_key(t: torch.Tensor) -> int:
    """Identity of ``t``'s storage (views share it). Valid while the tensors compared are alive."""
    return t.untyped_storage()._cdata


def output_tensors(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for t in tree_leaves(output) if isinstance(t, torch.Tensor)]


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class SavedTensorCounter:
    """``saved_tensors_hooks`` that add up, per row key, the bytes autograd keeps for backward.

    Each storage is counted once (views and in-place results share their storage); storages of parameters,
    buffers and the input batch are excluded (they exist anyway and are counted separately).
    """

    def __init__(self, key_fn: Callable[[], tuple[str, int, int]], exclude: set[int]) -> None:
        self.key_fn = key_fn
        self.seen = set(exclude)
        self.bytes: dict[tuple[str, int, int], int] = {}
        self.alive: list[torch.Tensor] = []

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in self.seen:
            self.seen.add(key)
            row = self.key_fn()
            self.bytes[row] = self.bytes.get(row, 0) + storage.nbytes()
        self.alive.append(t)
        return t

    @staticmethod
    def unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    @property
    def total(self) -> int:
        return sum(self.bytes.values())
