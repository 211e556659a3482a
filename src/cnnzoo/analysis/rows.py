"""The rows of an analysis: what one leaf-module call (or one run of a container's own ops) did, filled in by the
interceptor during the pass (:class:`OpRow`), the tensor facts it is counted with (storage identity, bytes, the bytes
autograd saves for backward), and the rows turned into the report's layer table (:func:`layer_stats`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from . import counts
from . import receptive_field as rf_mod
from .result import LayerStat


class OpRow:
    """What one leaf-module call (or one run of a container's own ops) did, filled in during the pass."""

    __slots__ = ("key", "module", "leaf", "ops", "macs", "extra_flops", "uncounted", "output", "in_shape", "spec")

    def __init__(self, key: tuple[str, int, int], module: nn.Module, leaf: bool) -> None:
        self.key = key  # (module path, call number, segment number; 0 for a leaf)
        self.module = module
        self.leaf = leaf
        self.ops: list[str] = []
        self.macs = 0
        self.extra_flops: dict[str, int] = {}
        self.uncounted: list[str] = []
        self.output: Any = None
        self.in_shape: tuple[int, ...] | None = None
        self.spec: tuple[Any, ...] | None = None  # the row's defining op: see op_spec


def op_spec(op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
    """A row's defining op, as the lecture labels it: ``("conv", kh, kw, cin_per_group, cout)``,
    ``("fc", fan_in, fan_out)``, ``("pool", "max" | "avg", kh, kw)``; ``None`` for any other op."""
    if op in counts.CONV_OPS:
        w = args[1]
        if w.dim() == 4:
            return ("conv", w.shape[2], w.shape[3], w.shape[1], w.shape[0])
        return ("conv", *w.shape[2:], w.shape[1], w.shape[0])
    if op in ("addmm", "mm"):
        b = args[2] if op == "addmm" else args[1]
        return ("fc", b.shape[0], b.shape[1])
    if op in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d"):
        k = args[1] if len(args) > 1 else kwargs["kernel_size"]
        k = list(k) if isinstance(k, (list, tuple)) else [k]
        return ("pool", "avg" if op == "avg_pool2d" else "max", k[0], k[-1])
    return None


# ---- tensor facts ---------------------------------------------------------------------------------------------------


def storage_key(t: torch.Tensor) -> int:
    """Identity of ``t``'s storage (views share it). Valid while the tensors compared are alive."""
    return t.untyped_storage()._cdata


def output_tensors(output: Any) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for t in tree_leaves(output) if isinstance(t, torch.Tensor)]


def nbytes(t: torch.Tensor) -> int:
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


# ---- the layer table ------------------------------------------------------------------------------------------------


def layer_stats(
    rows: list[OpRow],
    fields: dict[int, rf_mod.Field],
    x: torch.Tensor,
    saved: dict[tuple[str, int, int], int] | None,
    batch: int,
    label: str,
    sizes: dict[int, tuple[int, int, bool]],
) -> list[LayerStat]:
    """One :class:`LayerStat` per row: output (new memory or an alias of an earlier tensor), the module's own
    parameters at its first row, saved-for-backward bytes (``saved``, per row key) and the output's receptive field
    (``fields``, by tensor id). ``sizes`` maps a meta parameter's id to ``(numel, nbytes, requires_grad)``."""
    seen = {storage_key(x)}
    attributed: set[int] = set()
    stats: list[LayerStat] = []
    for row in rows:
        outputs = output_tensors(row.output)
        keys = [storage_key(t) for t in outputs]
        new = bool(keys) and any(k not in seen for k in keys)
        seen.update(keys)
        weights = biases = 0
        for pname, p in row.module._parameters.items():  # the module's own tensors, each at its first row
            if p is None or id(p) in attributed:
                continue
            attributed.add(id(p))
            if pname == "bias":
                biases += sizes[id(p)][0]
            else:
                weights += sizes[id(p)][0]
        first = outputs[0] if outputs else None
        out_shape = tuple(first.shape[1:]) if first is not None and first.dim() and first.shape[0] == batch \
            else (tuple(first.shape) if first is not None else ())  # fmt: skip
        field = fields.get(id(first)) if first is not None else None
        path, call, _ = row.key
        stats.append(LayerStat(
            name=path or label,
            kind=type(row.module).__name__ if row.leaf else _segment_kind(row, first),
            call=call,
            in_shape=row.in_shape[1:] if row.in_shape and row.in_shape[0] == batch else row.in_shape,
            out_shape=out_shape,
            activations=sum(t.numel() for t in outputs),
            activation_bytes=sum(nbytes(t) for t in outputs),
            new_memory=new,
            weights=weights,
            biases=biases,
            macs=row.macs,
            extra_flops=dict(row.extra_flops),
            saved_bytes=0 if saved is None else saved.get(row.key, 0),
            receptive_field=field if isinstance(field, rf_mod.ReceptiveField) else None,
            ops=tuple(row.ops),
            uncounted=tuple(dict.fromkeys(row.uncounted)),
            spec=row.spec,
        ))  # fmt: skip
    return stats


_TRIVIAL = {"view", "_unsafe_view", "t", "transpose", "permute", "expand", "unsqueeze", "squeeze", "detach", "alias",
            "slice", "select", "_reshape_alias", "clone", "contiguous", "_to_copy"}  # fmt: skip


def _segment_kind(row: OpRow, out: torch.Tensor | None) -> str:
    names = [op.rstrip("_") for op in row.ops]
    main = [n for n in dict.fromkeys(names) if n not in _TRIVIAL]
    if main:
        return "+".join(main)
    if out is not None and row.in_shape is not None and out.dim() == 2 and len(row.in_shape) > 2:
        return "flatten"
    return "+".join(dict.fromkeys(names)) or "noop"
