"""Loading weights into a model: strict, with the keys or shapes that do not fit named.

Files are read by :mod:`cnnzoo.checkpoint` (safetensors, or ``torch.load(weights_only=True)``: no code runs);
``WeightsError`` is its :class:`~cnnzoo.checkpoint.CheckpointError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import WeightsError, read_state_dict


def load_weights(
    model: nn.Module,
    source: str | Path | Mapping[str, Any],
    *,
    torchvision_key_map: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    name: str = "model",
) -> nn.Module:
    """Load ``source`` into ``model`` strictly; torchvision keys are mapped for torchvision-compatible variants."""
    state = read_state_dict(source)
    own = model.state_dict()
    if torchvision_key_map is not None and not set(state) <= set(own):
        state = torchvision_key_map(state)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})")
        raise WeightsError(f"weights do not fit {name}: " + "; ".join(parts))
    shape_diff = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if state[k].shape != v.shape
    ]
    if shape_diff:
        raise WeightsError(f"weights do not fit {name}: shape mismatch at " + "; ".join(shape_diff[:3]))
    model.load_state_dict(state, strict=True)
    return model


__all__ = ["WeightsError", "load_weights", "read_state_dict"]
