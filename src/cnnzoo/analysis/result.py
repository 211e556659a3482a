"""What :func:`~.analyzer.analyze` returns: an :class:`Analysis` (one :class:`LayerStat` per layer call, the
model's :class:`Totals`) and its formats.

Formats: ``table`` (plain text), ``lecture`` (CS231n lecture 9's notation: one :class:`LectureRow` per
CONV/POOL/NORM/FC/CONCAT line), ``markdown``, ``csv``, ``json``. Units are in the names: ``macs`` (multiply-adds;
``flops = 2 * macs``), ``activations`` (values, what the lecture calls "memory"), ``*_bytes``. Sizes are printed in
both MiB (2^20) and MB (10^6).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from typing import Any

import torch

from .receptive_field import ReceptiveField, axes_text, plain_number

SCHEMA_VERSION = 1

# CS231n lecture 9, "VGGNet" table: the per-layer memory lines (INPUT, 13 CONV, 5 POOL, 3 FC) add up to this many
# values, while the slide's total says "24M * 4 bytes ~= 96MB / image". Used only to add that note.
LECTURE_VGG16_LINES_SUM = 15_237_608

# ---- the numbers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerStat:
    """One call of a leaf module, or one run of ops a container performs itself (``cat``, ``add``, ``flatten``).

    Counts are for the whole batch; ``in_shape`` (of the first op's first input) and ``out_shape`` are per sample
    (``[C, H, W]``). ``receptive_field`` is ``None`` when
    the output has no spatial layout left (it sees the whole image) or does not depend on the image.
    """

    name: str
    kind: str
    call: int
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...]
    activations: int  # values in the output ("memory" in the lecture's tables)
    activation_bytes: int
    new_memory: bool  # False when the output is a view or an in-place result of an earlier tensor
    weights: int
    biases: int
    macs: int
    extra_flops: dict[str, int]
    saved_bytes: int  # bytes autograd keeps for backward (training mode), counted once per storage
    receptive_field: ReceptiveField | None
    ops: tuple[str, ...]
    uncounted: tuple[str, ...] = ()
    spec: tuple[Any, ...] | None = None

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "out_shape": list(self.out_shape),
            "activations": self.activations,
            "activation_bytes": self.activation_bytes,
            "params": self.params,
            "macs": self.macs,
            "receptive_field": None if self.receptive_field is None else self.receptive_field.to_dict(),
            "call": self.call,
            "weights": self.weights,
            "biases": self.biases,
            "flops": self.flops,
            "extra_flops": dict(self.extra_flops),
            "saved_bytes": self.saved_bytes,
            "new_memory": self.new_memory,
            "uncounted": list(self.uncounted),
        }


@dataclass(frozen=True)
class Totals:
    """Whole-model numbers. Parameters are counted once per tensor (shared and tied weights once)."""

    params: int
    trainable_params: int
    frozen_params: int
    weights: int
    biases: int
    buffers: int
    macs: int
    extra_flops: dict[str, int]
    activations: int  # values in every newly allocated layer output, input included (the lecture's TOTAL memory)
    activation_bytes: int
    param_bytes: int
    buffer_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    input_bytes: int
    saved_activation_bytes: int | None  # None when the training pass was not run
    params_not_run: int  # parameters of modules this forward never called (e.g. auxiliary heads in eval mode)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def train_memory_bytes(self) -> int | None:
        """params + buffers + gradients + optimizer state + saved activations + input batch."""
        if self.saved_activation_bytes is None:
            return None
        return (self.param_bytes + self.buffer_bytes + self.grad_bytes + self.optimizer_bytes
                + self.saved_activation_bytes + self.input_bytes)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "activations": self.activations,
            "activation_bytes": self.activation_bytes,
            "train_memory_bytes": self.train_memory_bytes,
            "trainable_params": self.trainable_params,
            "frozen_params": self.frozen_params,
            "weights": self.weights,
            "biases": self.biases,
            "buffers": self.buffers,
            "extra_flops": dict(self.extra_flops),
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "grad_bytes": self.grad_bytes,
            "optimizer_bytes": self.optimizer_bytes,
            "input_bytes": self.input_bytes,
            "saved_activation_bytes": self.saved_activation_bytes,
            "params_not_run": self.params_not_run,
        }


# ---- CS231n lecture 9's table notation ----------------------------------------------------------------------------


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


# ---- the analysis and its formats ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """What :func:`cnnzoo.analyze` found; ``str(analysis)`` is the text table."""

    model: str
    input_size: tuple[int, ...]
    batch_size: int
    dtype: torch.dtype
    optimizer: str
    layers: tuple[LayerStat, ...]
    totals: Totals
    receptive_field: ReceptiveField | None
    uncounted: dict[str, int]
    notes: tuple[str, ...] = ()
    modules_not_run: tuple[str, ...] = ()

    # ---- machine-readable ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "input_size": list(self.input_size),
            "batch_size": self.batch_size,
            "dtype": str(self.dtype).removeprefix("torch."),
            "optimizer": self.optimizer,
            "layers": [layer.to_dict() for layer in self.layers],
            "totals": self.totals.to_dict(),
            "receptive_field": None if self.receptive_field is None else self.receptive_field.to_dict(),
            "uncounted": dict(self.uncounted),
            "modules_not_run": list(self.modules_not_run),
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["name", "kind", "call", "out_shape", "activations", "activation_bytes", "params", "weights",
                         "biases", "macs", "flops", "saved_bytes", "rf_size", "rf_jump", "rf_start", "uncounted"])
        for s in self.layers:
            rf = s.receptive_field
            writer.writerow([
                s.name, s.kind, s.call, "x".join(map(str, s.out_shape)), s.activations, s.activation_bytes, s.params,
                s.weights, s.biases, s.macs, s.flops, s.saved_bytes,
                "" if rf is None else "x".join(str(v) for v in _plain(rf.size)),
                "" if rf is None else "x".join(str(v) for v in _plain(rf.jump)),
                "" if rf is None else "x".join(str(v) for v in _plain(rf.start)),
                " ".join(s.uncounted),
            ])  # fmt: skip
        return buffer.getvalue()

    # ---- human-readable -----------------------------------------------------------------------------------------
    def _cells(self) -> tuple[list[str], list[list[str]]]:
        header = ["#", "layer", "kind", "output", "params", "MACs", "activations", "saved for bwd", "RF/jump"]
        rows = []
        for i, s in enumerate(self.layers, 1):
            name = s.name if s.call == 1 else f"{s.name} [call {s.call}]"
            rows.append([
                str(i), name, s.kind, "x".join(map(str, s.out_shape)), f"{s.params:,}" if s.params else "-",
                f"{s.macs:,}" if s.macs else "-", f"{s.activations:,}" + ("" if s.new_memory else " (alias)"),
                _bytes(s.saved_bytes, short=True) if s.saved_bytes else "-",
                "global" if s.receptive_field is None else str(s.receptive_field),
            ])  # fmt: skip
        return header, rows

    def summary_lines(self) -> list[str]:
        t = self.totals
        dtype = str(self.dtype).removeprefix("torch.")
        c = "x".join(map(str, self.input_size))
        lines = [
            f"model: {self.model}   input: {c}   batch: {self.batch_size}   dtype: {dtype}",
            f"params: {t.params:,} (trainable {t.trainable_params:,}, frozen {t.frozen_params:,}; "
            f"weights {t.weights:,} + biases {t.biases:,})",
            f"MACs: {_si(t.macs)} ({t.macs:,})   FLOPs = 2 x MACs: {_si(t.flops)}",
        ]
        extra = {k: v for k, v in t.extra_flops.items() if v}
        if extra:
            lines.append("other FLOPs (not in MACs): " + ", ".join(f"{k} {_si(v)}" for k, v in extra.items()))
        lines.append(f"activations: {t.activations:,} values = {_bytes(t.activation_bytes)} "
                     "(every newly allocated layer output, input included)")  # fmt: skip
        if self.receptive_field is not None:
            lines.append(f"receptive field: {axes_text(self.receptive_field.size)} px, "
                         f"jump {axes_text(self.receptive_field.jump)} px")  # fmt: skip
        if t.train_memory_bytes is not None:
            lines.append(
                f"training memory (batch {self.batch_size}, {self.optimizer}"
                f"{' with momentum' if self.optimizer == 'sgd' else ''}): {_bytes(t.train_memory_bytes)} = "
                f"params {_bytes(t.param_bytes, short=True)} + buffers {_bytes(t.buffer_bytes, short=True)} + "
                f"grads {_bytes(t.grad_bytes, short=True)} + optimizer {_bytes(t.optimizer_bytes, short=True)} + "
                f"saved activations {_bytes(t.saved_activation_bytes or 0, short=True)} + "
                f"input {_bytes(t.input_bytes, short=True)}"
            )
        if self.modules_not_run:
            lines.append(f"not run by this forward: {', '.join(self.modules_not_run)} ({t.params_not_run:,} params)")
        if self.uncounted:
            lines.append("uncounted ops (no formula, not in the totals): "
                         + ", ".join(f"{k} x{v}" for k, v in self.uncounted.items()))  # fmt: skip
        else:
            lines.append("uncounted ops: none")
        lines += [f"note: {n}" for n in self.notes]
        return lines

    def to_table(self) -> str:
        header, rows = self._cells()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        right = {0, 4, 5, 6, 7}

        def fmt(cells: list[str]) -> str:
            return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        out = [fmt(header).rstrip(), "  ".join("-" * w for w in widths)]
        out += [fmt(r).rstrip() for r in rows]
        out.append("")
        out += self.summary_lines()
        return "\n".join(out)

    def to_markdown(self) -> str:
        header, rows = self._cells()
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i in {0, 4, 5, 6, 7} else "---"
                                                              for i in range(len(header))) + "|"]  # fmt: skip
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
        out.append("")
        out += [f"- {line}" for line in self.summary_lines()]
        return "\n".join(out)

    # ---- the lecture's notation ---------------------------------------------------------------------------------
    def lecture_rows(self) -> list[LectureRow]:
        """The layers as the lecture tabulates them: INPUT, CONV/POOL/NORM/FC/CONCAT lines; ReLU, dropout, views,
        adds and same-shape adaptive pools are folded into the layer before, as the lecture does."""
        rows = [LectureRow("INPUT", _hwc(self.input_size), math.prod(self.input_size), 0, "0")]
        for s in self.layers:
            label = _lecture_label(s)
            if label is None:
                continue
            weights = s.weights
            spec = s.spec or ()
            if spec and spec[0] == "conv":
                formula = f"({spec[1]}*{spec[2]}*{spec[3]})*{spec[4]} = {weights:,}"
            elif spec and spec[0] == "fc":
                h, w, c = rows[-1].shape_hwc
                fan_in = f"{h}*{w}*{c}" if h * w > 1 and h * w * c == spec[1] else f"{spec[1]}"
                formula = f"{fan_in}*{spec[2]} = {weights:,}"
            else:
                formula = f"{weights:,}"
            rows.append(LectureRow(label, _hwc(s.out_shape), math.prod(s.out_shape), weights, formula))
        return rows

    def to_lecture(self) -> str:
        rows = self.lecture_rows()
        values = sum(r.memory for r in rows)
        t = self.totals
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        lines = [f"{self.model} at {'x'.join(map(str, self.input_size))} "
                 "(CS231n lecture 9 notation: memory = values per image, params not counting biases)", ""]  # fmt: skip
        lines += [str(r) for r in rows]
        lines += [
            "",
            f"TOTAL memory: {values:,} values (the exact sum of the lines above) * {itemsize} bytes = "
            f"{_bytes(values * itemsize)} / image (forward only; roughly x2 for the backward pass)",
            f"TOTAL params: {t.weights:,} weights ({_si(t.weights)}) + {t.biases:,} biases = {t.params:,}",
        ]
        if values == LECTURE_VGG16_LINES_SUM:
            with_relu = values + sum(r.memory for r in rows if r.label.startswith("CONV"))
            lines += [
                "",
                "Note: the lecture's VGG16 slide says 'TOTAL memory: 24M * 4 bytes ~= 96MB / image'. Its own lines "
                f"(identical to the ones above) add up to {values:,} values = {_bytes(values * 4)} in fp32: the slide's "
                f"24M overstates its own table by {24e6 / values - 1:.0%} (and counting a separate output for every "
                f"ReLU gives {with_relu:,}, not 24M either).",
            ]
        return "\n".join(lines)

    def format(self, fmt: str = "table") -> str:
        formats = {"table": self.to_table, "lecture": self.to_lecture, "markdown": self.to_markdown,
                   "csv": self.to_csv, "json": self.to_json}  # fmt: skip
        if fmt not in formats:
            raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(formats)}")
        return formats[fmt]()

    def __str__(self) -> str:
        return self.to_table()


def _si(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n:g}"


def _bytes(n: int, *, short: bool = False) -> str:
    """``58.1 MiB (60.95 MB)``: binary and decimal units side by side, so nobody has to guess."""
    units = (("GiB", 2**30, "GB", 1e9), ("MiB", 2**20, "MB", 1e6), ("KiB", 2**10, "KB", 1e3))
    for bin_unit, bin_scale, dec_unit, dec_scale in units:
        if n >= bin_scale:
            text = f"{n / bin_scale:.4g} {bin_unit}"
            return text if short else f"{text} ({n / dec_scale:.4g} {dec_unit})"
    return f"{n} B"


def _plain(values: tuple[float, ...]) -> list[int | float]:
    return [plain_number(v) for v in values]
