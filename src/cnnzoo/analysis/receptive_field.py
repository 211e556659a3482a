"""Receptive fields: size, jump (effective stride) and start, propagated op by op through any graph.

For a unit of a feature map, the receptive field is the input region that can influence it. Per spatial axis, with
``r`` the field size, ``j`` the jump (distance in input pixels between neighbouring units) and ``s`` the centre of
the first unit's field (input pixel coordinates, 0 = centre of the first input pixel), a window op with kernel
``k``, stride ``t``, padding ``p`` and dilation ``d`` gives (Araujo, Norris, Sim, Distill 2019, eqs. 2-4)::

    k_eff = d * (k - 1) + 1
    r_out = r + (k_eff - 1) * j
    j_out = j * t
    s_out = s + ((k_eff - 1) / 2 - p) * j

Where paths merge (``add``, ``cat``, any op with several inputs derived from the image) the field is the largest
over the inputs: the max over paths, which is what makes residual and Inception nets come out right. An output
that no longer has the input's spatial layout (global pooling, flatten, a linear layer) sees the whole image: it is
:data:`GLOBAL`. The network's receptive field is the largest over its spatial feature maps (the last feature map
before global pooling or the classifier), as in Araujo et al.'s table: AlexNet 195, VGG16 212.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one feature map, per spatial axis ``(height, width)``, in input pixels."""

    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]

    def to_dict(self) -> dict[str, list[float]]:
        return {"size": [plain_number(v) for v in self.size], "jump": [plain_number(v) for v in self.jump],
                "start": [plain_number(v) for v in self.start]}  # fmt: skip

    def __str__(self) -> str:
        """``195`` for a square field, ``7x1`` otherwise; jump after a slash: ``195/32``."""
        size = axes_text(self.size)
        jump = axes_text(self.jump)
        return f"{size}/{jump}"


class _Global:
    """The field covers the whole input: the output has no spatial layout left (global pool, flatten, FC)."""

    def __repr__(self) -> str:
        return "GLOBAL"

    def __str__(self) -> str:
        return "global"


GLOBAL = _Global()
INPUT = ReceptiveField(size=(1.0, 1.0), jump=(1.0, 1.0), start=(0.0, 0.0))
Field = ReceptiveField | _Global


def plain_number(value: float) -> int | float:
    """``3.0`` -> ``3``; other values rounded to 4 decimals (fields of dilated or resampled maps can be fractional)."""
    return int(value) if float(value).is_integer() else round(value, 4)


def axes_text(values: tuple[float, float]) -> str:
    """``(7, 7)`` -> ``7``, ``(7, 1)`` -> ``7x1``."""
    a, b = (plain_number(v) for v in values)
    return f"{a}" if a == b else f"{a}x{b}"


def _pair(value: Any, default: int | None = None) -> tuple[int, int]:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        if default is None:
            raise ValueError("missing window parameter")
        return (default, default)
    if isinstance(value, (list, tuple)):
        return (int(value[0]), int(value[-1])) if len(value) <= 2 else (int(value[-2]), int(value[-1]))
    return (int(value), int(value))


def window(
    rf: ReceptiveField,
    kernel: Sequence[int],
    stride: Sequence[int] = (1, 1),
    padding: Sequence[int] = (0, 0),
    dilation: Sequence[int] = (1, 1),
) -> ReceptiveField:
    """The field after a convolution or pooling window (kernel, stride, padding, dilation per axis)."""
    size, jump, start = [], [], []
    for axis in range(2):
        k_eff = dilation[axis] * (kernel[axis] - 1) + 1
        size.append(rf.size[axis] + (k_eff - 1) * rf.jump[axis])
        start.append(rf.start[axis] + ((k_eff - 1) / 2 - padding[axis]) * rf.jump[axis])
        jump.append(rf.jump[axis] * stride[axis])
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))  # type: ignore[arg-type]


def transposed_window(
    rf: ReceptiveField, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int]
) -> ReceptiveField:
    """The field after a transposed convolution: the jump shrinks by the stride (upsampling)."""
    size, jump, start = [], [], []
    for axis in range(2):
        k_eff = dilation[axis] * (kernel[axis] - 1) + 1
        j_out = rf.jump[axis] / stride[axis]
        size.append(rf.size[axis] + (k_eff - 1) * j_out)
        start.append(rf.start[axis] - (k_eff - 1 - padding[axis]) * j_out)
        jump.append(j_out)
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))  # type: ignore[arg-type]


def adaptive(rf: ReceptiveField, in_hw: Sequence[int], out_hw: Sequence[int]) -> Field:
    """Adaptive pooling from ``in_hw`` to ``out_hw``: identity when equal, global at 1x1, else its widest window."""
    if tuple(out_hw) == (1, 1) and tuple(in_hw) != (1, 1):
        return GLOBAL
    kernel, stride = [], []
    for i, o in zip(in_hw, out_hw):
        widest = max(math.ceil((k + 1) * i / o) - math.floor(k * i / o) for k in range(o))
        kernel.append(widest)
        stride.append(i / o)
    return window(rf, kernel, stride)


def strided_slice(rf: ReceptiveField, axis: int, start: int, step: int) -> ReceptiveField:
    """``x[..., start::step]`` on spatial ``axis`` (0 = height): subsampling without a window."""
    size, jump, first = list(rf.size), list(rf.jump), list(rf.start)
    first[axis] = rf.start[axis] + start * rf.jump[axis]
    jump[axis] = rf.jump[axis] * step
    return ReceptiveField(tuple(size), tuple(jump), tuple(first))  # type: ignore[arg-type]


def padded(rf: ReceptiveField, pad_top: int, pad_left: int) -> ReceptiveField:
    """Explicit padding moves the first unit ``pad`` units before the old first one."""
    first = (rf.start[0] - pad_top * rf.jump[0], rf.start[1] - pad_left * rf.jump[1])
    return ReceptiveField(rf.size, rf.jump, first)


def rescaled(rf: ReceptiveField, in_hw: Sequence[int], out_hw: Sequence[int]) -> ReceptiveField:
    """Upsampling by ``out / in``: the same field, a finer jump."""
    jump = tuple(rf.jump[a] * in_hw[a] / out_hw[a] for a in range(2))
    return ReceptiveField(rf.size, jump, rf.start)  # type: ignore[arg-type]


def merge(fields: Sequence[Field]) -> Field:
    """Where paths meet (add, cat, ...): the largest field over the inputs; global if any input is global."""
    best: ReceptiveField | None = None
    for f in fields:
        if f is GLOBAL:
            return GLOBAL
        assert isinstance(f, ReceptiveField)
        if best is None or max(f.size) > max(best.size):
            best = f
    assert best is not None
    return best


def stacked(kernels: Sequence[int], strides: Sequence[int] | None = None) -> ReceptiveField:
    """The field of a plain stack of square convolutions, e.g. ``stacked([3, 3, 3]).size == (7, 7)``."""
    rf = INPUT
    for i, k in enumerate(kernels):
        s = 1 if strides is None else strides[i]
        rf = window(rf, (k, k), (s, s), (k // 2, k // 2))
    return rf


# ---- propagation through aten ops (used by the interceptor) ---------------------------------------------------


def _is_spatial(t: torch.Tensor) -> bool:
    return t.dim() >= 4


def _get(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str) -> Any:
    value = args[index] if len(args) > index else kwargs.get(name)
    return None if isinstance(value, (list, tuple)) and len(value) == 0 else value


def _conv(args: Sequence[Any], kwargs: dict[str, Any], rf: ReceptiveField, out: torch.Tensor) -> Field:
    weight = args[1]
    if weight.dim() != 4:
        return GLOBAL
    kernel = (weight.shape[2], weight.shape[3])
    stride = _pair(_get(args, kwargs, 3, "stride"), 1)
    padding = _pair(_get(args, kwargs, 4, "padding"), 0)
    dilation = _pair(_get(args, kwargs, 5, "dilation"), 1)
    if _get(args, kwargs, 6, "transposed"):
        return transposed_window(rf, kernel, stride, padding, dilation)
    return window(rf, kernel, stride, padding, dilation)


def _pool(args: Sequence[Any], kwargs: dict[str, Any], rf: ReceptiveField, out: torch.Tensor) -> Field:
    """avg_pool2d(x, kernel, stride=kernel, padding) and max_pool2d(x, kernel, stride=kernel, padding, dilation)."""
    kernel = _pair(_get(args, kwargs, 1, "kernel_size"))
    stride = _pair(_get(args, kwargs, 2, "stride"), kernel[0]) if _get(args, kwargs, 2, "stride") else kernel
    padding = _pair(_get(args, kwargs, 3, "padding"), 0)
    return window(rf, kernel, stride, padding)


def _max_pool(args: Sequence[Any], kwargs: dict[str, Any], rf: ReceptiveField, out: torch.Tensor) -> Field:
    kernel = _pair(_get(args, kwargs, 1, "kernel_size"))
    stride = _pair(_get(args, kwargs, 2, "stride"), kernel[0]) if _get(args, kwargs, 2, "stride") else kernel
    padding = _pair(_get(args, kwargs, 3, "padding"), 0)
    dilation = _pair(_get(args, kwargs, 4, "dilation"), 1)
    return window(rf, kernel, stride, padding, dilation)


def _slice(args: Sequence[Any], kwargs: dict[str, Any], rf: ReceptiveField, out: torch.Tensor) -> Field:
    x = args[0]
    dim = (_get(args, kwargs, 1, "dim") or 0) % x.dim()
    axis = dim - (x.dim() - 2)
    if axis < 0:
        return rf
    start = int(_get(args, kwargs, 2, "start") or 0)
    step = int(_get(args, kwargs, 4, "step") or 1)
    if start < 0:
        start += x.shape[dim]
    return strided_slice(rf, axis, max(start, 0), step)


def _pad(args: Sequence[Any], kwargs: dict[str, Any], rf: ReceptiveField, out: torch.Tensor) -> Field:
    pad = list(_get(args, kwargs, 1, "pad") or ()) + [0, 0, 0, 0]
    return padded(rf, pad_top=int(pad[2]), pad_left=int(pad[0]))


def _adaptive(args: Sequence[Any], kwargs: dict[str, Any], rf: ReceptiveField, out: torch.Tensor) -> Field:
    return adaptive(rf, args[0].shape[-2:], out.shape[-2:])


def _upsample(args: Sequence[Any], kwargs: dict[str, Any], rf: ReceptiveField, out: torch.Tensor) -> Field:
    return rescaled(rf, args[0].shape[-2:], out.shape[-2:])


_RULES: dict[str, Callable[[Sequence[Any], dict[str, Any], ReceptiveField, torch.Tensor], Field]] = {
    "convolution": _conv, "_convolution": _conv, "convolution_overrideable": _conv,
    "max_pool2d": _max_pool, "max_pool2d_with_indices": _max_pool, "avg_pool2d": _pool,
    "_adaptive_avg_pool2d": _adaptive, "adaptive_max_pool2d": _adaptive, "slice": _slice,
    "constant_pad_nd": _pad, "upsample_nearest2d": _upsample, "upsample_bilinear2d": _upsample,
    "_upsample_nearest_exact2d": _upsample, "upsample_bicubic2d": _upsample,
}  # fmt: skip


def propagate(
    op: str, args: Sequence[Any], kwargs: dict[str, Any], out: torch.Tensor, inputs: Sequence[Field]
) -> tuple[Field, bool]:
    """The field of ``out``, given the fields of the op's image-derived ``inputs`` (at least one).

    Returns ``(field, known)``: ``known`` is False when the op changed the spatial layout in a way there is no rule
    for; the output is then marked global and the caller reports the op.
    """
    if not _is_spatial(out):
        return GLOBAL, True
    rule = _RULES.get(op)
    if rule is not None and len(inputs) == 1 and isinstance(inputs[0], ReceptiveField):
        return rule(args, kwargs, inputs[0], out), True
    field = merge(inputs)
    if field is GLOBAL:
        return GLOBAL, True
    source = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if source is None or not _is_spatial(source) or source.shape[-2:] == out.shape[-2:]:
        return field, True
    if tuple(out.shape[-2:]) == (1, 1):
        return GLOBAL, True  # a reduction to one position (global pooling by another op)
    return GLOBAL, False
