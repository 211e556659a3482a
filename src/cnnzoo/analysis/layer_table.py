"""The pass's rows as the report's layer table: one :class:`~.stats.LayerStat` per leaf-module call or run of a
container's own ops (output, new memory or alias, its parameters at their first row, saved-for-backward bytes).
"""

from __future__ import annotations

import torch

from . import receptive_field as rf_mod
from .interceptor import Interceptor
from .op_row import OpRow
from .stats import LayerStat
from .tensors import _nbytes, output_tensors, storage_key


def _layers(
    mode: Interceptor, x: torch.Tensor, saved: dict | None, batch: int, label: str, sizes: dict[int, tuple]
) -> list[LayerStat]:
    seen = {storage_key(x)}
    attributed: set[int] = set()
    rows: list[LayerStat] = []
    for row in mode.rows:
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
        field = mode.field_of(first)
        path, call, _ = row.key
        rows.append(LayerStat(
            name=path or label,
            kind=type(row.module).__name__ if row.leaf else _segment_kind(row, first),
            call=call,
            in_shape=row.in_shape[1:] if row.in_shape and row.in_shape[0] == batch else row.in_shape,
            out_shape=out_shape,
            activations=sum(t.numel() for t in outputs),
            activation_bytes=sum(_nbytes(t) for t in outputs),
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
    return rows


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
