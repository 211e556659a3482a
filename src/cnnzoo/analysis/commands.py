"""``cnnzoo summary`` and ``cnnzoo rf``: the analyzer on the command line."""

from __future__ import annotations

import argparse

from torch import nn

from ..errors import UserError
from ..registry import model_info
from .analyzer import analyze
from .meta import AnalysisError
from .options import DTYPES, OPTIMIZERS, parse_dtype, parse_input_size
from .receptive_field import axes_text, stacked

FORMATS = ("table", "lecture", "markdown", "csv", "json")
MAX_DEMO_CHANNELS = 1_000_000  # 49 C^2 weights stay far inside torch's 64-bit sizes


def _input_size(text: str | None, name: str) -> tuple[int, ...] | None:
    """``CxHxW``; ``HxW`` or ``S`` (square) take the model's own channel count."""
    if text is None:
        return None
    try:
        dims = parse_input_size(text)
    except ValueError as exc:
        raise UserError(f"--input: {exc}") from None
    if len(dims) < 3:
        channels = model_info(name).input_size[0]
        dims = (channels, *dims) if len(dims) == 2 else (channels, dims[0], dims[0])
    return dims


def _run(name: str, **kwargs: object):
    try:
        return analyze(name, **kwargs)  # type: ignore[arg-type]
    except AnalysisError as exc:
        raise UserError(str(exc)) from None
    except (RuntimeError, ValueError, TypeError) as exc:  # shapes past torch's 64-bit sizes ("overflow" in its message)
        if "overflow" not in str(exc).lower():
            raise
        raise UserError(f"{name}: --input and --batch-size give tensors larger than torch can describe (more than "
                        "2**63 bytes); use smaller ones") from None


def _cmd_summary(args: argparse.Namespace) -> int:
    size = _input_size(args.input, args.name)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        dtype = parse_dtype(args.dtype)
    except ValueError as exc:
        raise UserError(f"--dtype: {exc}") from None
    analysis = _run(args.name, input_size=size, batch_size=args.batch_size, dtype=dtype, optimizer=args.optimizer)
    print(analysis.format(args.format))
    return 0


def _cmd_rf(args: argparse.Namespace) -> int:
    if not args.names:
        if not 1 <= args.channels <= MAX_DEMO_CHANNELS:
            raise UserError(f"--channels must be in [1, {MAX_DEMO_CHANNELS:,}], got {args.channels}")
        print(_stacked_demo(args.channels))
        return 0
    for name in args.names:
        analysis = _run(name, input_size=_input_size(args.input, name), training=False)
        field = analysis.receptive_field
        where = "x".join(map(str, analysis.input_size))
        print(f"{name} at {where}: receptive field {axes_text(field.size) if field else 'global'} px, "
              f"jump {axes_text(field.jump) if field else '-'} px")  # fmt: skip
        if args.layers:
            for s in analysis.layers:
                if s.receptive_field is not None and (s.macs or "Pool" in s.kind or s.kind == "cat"):
                    rf = s.receptive_field
                    print(f"  {s.name:<40} {s.kind:<18} {axes_text(rf.size):>7} px  jump {axes_text(rf.jump)}")
    return 0


def _stacked_demo(channels: int) -> str:
    """The lecture's point, computed: three stacked 3x3 stride-1 convs see 7x7 with 27C^2 weights; one 7x7, 49C^2."""
    c = channels  # the layers are built on the meta device: shapes only, no weights allocated
    three = nn.Sequential(*[nn.Conv2d(c, c, 3, padding=1, bias=False, device="meta") for _ in range(3)])
    one = nn.Sequential(nn.Conv2d(c, c, 7, padding=3, bias=False, device="meta"))
    lines = [f"Receptive field of stacked convolutions (C = {c} channels in and out, stride 1, no bias):", ""]
    for label, net, formula in (("3 x CONV3", three, f"3*(3*3*C*C) = 27C^2 = 27*{c}^2"),
                                ("1 x CONV7", one, f"7*7*C*C = 49C^2 = 49*{c}^2")):  # fmt: skip
        analysis = analyze(net, (c, 32, 32), training=False)
        fields = [s.receptive_field for s in analysis.layers]
        path = " -> ".join(axes_text(f.size) for f in fields if f is not None)
        lines.append(f"  {label}: receptive field {path} px; weights {formula} = {analysis.totals.params:,}; "
                     f"MACs at 32x32 = {analysis.totals.macs:,}")  # fmt: skip
    lines += ["", "Same 7x7 view, 27/49 = 55% of the weights and compute, and three non-linearities instead of one "
              "(CS231n lecture 9, VGGNet). Per-axis rule: r_out = r_in + (k - 1) * jump.",
              f"Check: stacked([3, 3, 3]) = {axes_text(stacked([3, 3, 3]).size)} px."]  # fmt: skip
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "summary",
        help="layer-by-layer table: shapes, params, MACs, memory, receptive field",
        description="Analyse a registered network on the meta device (no weights, no input-sized memory): per layer "
        "output shape, params (weights + biases), MACs (FLOPs = 2 x MACs), activations, bytes saved for backward and "
        "receptive field; totals with a training-memory estimate. --format lecture prints CS231n's notation.",
    )
    p.add_argument("name", help="a registered model name (see `cnnzoo list`)")
    p.add_argument("--input", metavar="CxHxW",
                   help="input size, e.g. 3x224x224, 512x512 or 512 (default: the model's own)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=1, help="batch size for all counts (default: 1)")
    p.add_argument("--dtype", default="fp32", help=f"parameter/activation dtype: {', '.join(DTYPES)} (default fp32)")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="sgd",
                   help="optimizer state in the training-memory estimate (default: sgd with momentum)")  # fmt: skip
    p.set_defaults(func=_cmd_summary)

    p = subparsers.add_parser(
        "rf",
        help="receptive fields: the stacked-3x3 lesson, or a model's",
        description="Without a name: why three stacked 3x3 convs (7x7 view, 27C^2 weights) beat one 7x7 (49C^2). "
        "With names: each model's receptive field (max over paths, through residual adds and concatenations).",
    )
    p.add_argument("names", nargs="*", help="registered model names (optional)")
    p.add_argument("--input", metavar="CxHxW", help="input size (default: each model's own)")
    p.add_argument("--layers", action="store_true", help="also list the field after every conv/pool layer")
    p.add_argument("--channels", type=int, default=64, help="C for the stacked-conv demonstration (default 64)")
    p.set_defaults(func=_cmd_rf)
