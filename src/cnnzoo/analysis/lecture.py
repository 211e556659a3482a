"""CS231n lecture 9's table notation: one :class:`LectureRow` per CONV/POOL/NORM/FC/CONCAT line, its labels and its
rounding (``3.2M``, ``800K``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .stats import LayerStat


@dataclass(frozen=True)
class LectureRow:
    """One line of the lecture's table: ``label: [HxWxC]  memory: H*W*C=...  params: (k*k*Cin)*Cout = ...``."""

    label: str
    shape_hwc: tuple[int, int, int]
    memory: int  # values per image
    weights: int  # not counting biases, as the lecture
    weights_formula: str

    def __str__(self) -> str:
        h, w, c = self.shape_hwc
        memory = f"{self.memory}" if h == w == 1 else f"{h}*{w}*{c}={_short(self.memory)}"
        return f"{self.label}: [{h}x{w}x{c}]  memory: {memory}  params: {self.weights_formula}"


def _lecture_label(s: LayerStat) -> str | None:
    spec = s.spec or ()
    kind = s.kind
    if kind == "LocalResponseNorm":
        return "NORM"
    if kind.startswith("BatchNorm"):
        return "BN"
    if spec and spec[0] == "conv":
        kh, kw, cout = spec[1], spec[2], spec[4]
        return f"CONV{kh}-{cout}" if kh == kw else f"CONV{kh}x{kw}-{cout}"
    if spec and spec[0] == "fc":
        return "FC"
    if spec and spec[0] == "pool":
        prefix = "POOL" if spec[1] == "max" else "AVGPOOL"
        return f"{prefix}{spec[2]}" if spec[2] == spec[3] else f"{prefix}{spec[2]}x{spec[3]}"
    if "Pool" in kind and s.in_shape is not None and tuple(s.in_shape) != tuple(s.out_shape):
        return "AVGPOOL" if "Avg" in kind else "POOL"
    if kind == "cat":
        return "CONCAT"
    return None


def _hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) >= 3:
        return (shape[-2], shape[-1], math.prod(shape[:-2]))
    return (1, 1, math.prod(shape))


def _short(n: int) -> str:
    """The lecture's rounding: 3,211,264 -> 3.2M, 802,816 -> 800K, 150,528 -> 150K; exact below 10,000."""
    if n < 10_000:
        return str(n)
    r = round(n, 2 - len(str(n)))
    for unit, scale in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if r >= scale:
            return f"{r / scale:g}{unit}"
    return str(r)
