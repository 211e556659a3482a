"""Memoised meta kernels: a call's signature (op, argument shapes/strides/dtypes, scalar arguments), a description
of the fresh tensors it returned, and new empty meta tensors of those shapes for a repeated signature.
"""

from __future__ import annotations

from typing import Any

import torch

_META = torch.device("meta")
_UNCACHEABLE = object()
_Tensor = torch.Tensor


def _signature(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
    """A hashable description of a call: op, tensor shapes/strides/dtypes, everything else by value."""
    key: list[Any] = [func]
    append = key.append
    for a in args:
        if isinstance(a, _Tensor):
            append((a.shape, a.stride(), a.dtype))
        elif type(a) is list or type(a) is tuple:
            if a and type(a[0]) is int:  # sizes, strides, paddings
                append(tuple(a))
            else:
                append(tuple((b.shape, b.stride(), b.dtype) if isinstance(b, _Tensor) else b for b in a))
        else:
            append(a)
    if kwargs:
        for name, value in kwargs.items():
            if isinstance(value, _Tensor):
                append((name, value.shape, value.stride(), value.dtype))
            elif isinstance(value, list):
                return None
            else:
                append((name, value))
    return tuple(key)


def _describe_one(t: Any) -> Any:
    if t is None:
        return None
    if not isinstance(t, torch.Tensor) or not t.is_meta or t.storage_offset() != 0:
        return _UNCACHEABLE
    if t.untyped_storage().nbytes() != t.numel() * t.element_size():
        return _UNCACHEABLE
    return (tuple(t.shape), tuple(t.stride()), t.dtype)


def _describe(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return _describe_one(out)
    described = [_describe_one(t) for t in out]
    return _UNCACHEABLE if any(d is _UNCACHEABLE for d in described) else described


def _materialise(d: Any) -> torch.Tensor | None:
    if d is None:
        return None
    shape, stride, dtype = d
    return torch.empty_strided(shape, stride, dtype=dtype, device=_META)
