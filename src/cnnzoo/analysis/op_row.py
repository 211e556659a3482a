"""One row of the analysis as the interceptor fills it: :class:`OpRow`, and ``_spec``, the row's defining op
(``("conv", kh, kw, cin_per_group, cout)``, ``("fc", fan_in, fan_out)``, ``("pool", kind, kh, kw)``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from . import counts


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
        self.spec: tuple[Any, ...] | None = None  # the row's defining op: ("conv", kh, kw, cin_per_group, cout), ...


def _spec(op: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...] | None:
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
