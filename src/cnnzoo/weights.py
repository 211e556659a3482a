"""Loading weights safely: safetensors, or torch files read with ``weights_only=True`` (no code runs)."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserError


class WeightsError(UserError, ValueError):
    """A weights file or state dict that cannot be loaded into the model; the message says why."""


def read_state_dict(source: str | Path | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A flat ``{key: tensor}`` from a path or a mapping.

    Accepts a plain state dict, a cnnzoo training checkpoint (``{"model": state_dict, ...}``) or a
    ``{"state_dict": ...}`` wrapper. ``module.`` prefixes left by DataParallel/DDP are removed.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise WeightsError(f"{path}: no such weights file")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise WeightsError(f"{path}: refused, not a plain tensor file ({first})") from None
        except Exception as exc:  # truncated or garbage files surface as many exception types
            raise WeightsError(f"{path}: not a readable weights file ({type(exc).__name__}: {exc})") from None
        if not isinstance(state, Mapping):
            raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state dict")
    for wrapper in ("model", "state_dict"):
        if wrapper in state and isinstance(state[wrapper], Mapping):
            state = dict(state[wrapper])
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


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
