"""Loading weights into a model, the one way: ``load_weights(model, source, strict=True)``.

- strict (``create_model(weights=...)``, ``--resume``, ``cnnzoo eval``): the file must hold every key of the model,
  no other, each of the same shape; anything else is refused with the keys or shapes named;
- lenient (``strict=False``, fine-tuning from ``--weights``): every tensor whose key and shape fit is loaded, the
  rest of the model stays as initialised (*new*: e.g. a classifier of another class count) and the file's other
  tensors are *ignored*; a file that fits fewer than half of the model's floating-point tensors is refused (it is
  for another architecture).

A state dict in another published layout (torchvision's, for the ``_tv`` and torchvision-named variants) is renamed
first with ``torchvision_key_map`` (the registry's for the model), unless its keys are already the model's. Files are
read by :func:`cnnzoo.checkpoint.read_state_dict` (safetensors, or ``torch.load(weights_only=True)``: no code runs);
``WeightsError`` is its :class:`~cnnzoo.checkpoint.CheckpointError`. Either way :class:`LoadedWeights` says what
was loaded, what is new and what was ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .checkpoint import WeightsError, read_state_dict


@dataclass(frozen=True)
class LoadedWeights:
    loaded: tuple[str, ...]  # the model's state-dict keys taken from the file
    new: tuple[str, ...]  # keys left as initialised (absent from the file, or of another shape)
    ignored: tuple[str, ...]  # keys of the file the model does not have

    def line(self, source: str) -> str:
        """``weights: loaded 120 of 122 tensors from FILE; new: head.fc.weight, head.fc.bias``."""
        new = f"; new: {', '.join(self.new)}" if self.new else "; nothing new"
        extra = f"; {len(self.ignored)} tensors of the file unused" if self.ignored else ""
        total = len(self.loaded) + len(self.new)
        return f"weights: loaded {len(self.loaded)} of {total} tensors from {source}{new}{extra}"


def load_weights(
    model: nn.Module,
    source: str | Path | Mapping[str, Any],
    *,
    strict: bool = True,
    torchvision_key_map: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    name: str | None = None,
) -> LoadedWeights:
    """Load ``source`` (a path or a state dict) into ``model``; ``name`` (default: the class name) in messages."""
    state = read_state_dict(source)
    own = model.state_dict()
    name = name or type(model).__name__
    if torchvision_key_map is not None and not set(state) <= set(own):
        state = torchvision_key_map(state)
    if strict:
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
        return LoadedWeights(tuple(own), (), ())
    fits = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    floats = [k for k in own if own[k].is_floating_point()]
    if len([k for k in fits if own[k].is_floating_point()]) < len(floats) // 2:
        raise WeightsError(f"weights do not fit {name}: only {len(fits)} of {len(own)} tensors match by name and "
                           f"shape (is {source if not isinstance(source, Mapping) else 'the state dict'} for this "
                           "architecture?)")
    model.load_state_dict(fits, strict=False)
    return LoadedWeights(tuple(fits), tuple(k for k in own if k not in fits), tuple(k for k in state if k not in own))


__all__ = ["LoadedWeights", "WeightsError", "load_weights", "read_state_dict"]
