"""The page's model section: one network per layer from :func:`cnnzoo.analyze`, the lecture's VGG16 lesson
(memory sits in the early convolutions, parameters in the late fully connected layers), MACs per layer and receptive
field against depth; for a run, the network as that run built it (its input size, classes and options)."""

from __future__ import annotations

from typing import Any

from ..analysis import Analysis, AnalysisError, LayerStat, analyze, meta_model
from ..errors import UserError
from ..registry import model_info
from . import html as h
from .html import figure, to_svg
from .runs import RunData

_MANY = 120  # above this many layers, bars become one stepped area (a bar per layer would be unreadable and huge)


def main_layers(analysis: Analysis) -> list[LayerStat]:
    """The layers the lecture tabulates: those that compute (MACs or weights), pool or concatenate; normalisation
    layers are folded into the layer before, as the lecture's tables do."""
    return [s for s in analysis.layers
            if (s.macs or s.params or "Pool" in s.kind or s.kind == "cat") and "Norm" not in s.kind]  # fmt: skip


def _bars(ax: Any, values: list[float], colour: str) -> None:
    xs = list(range(1, len(values) + 1))
    if len(values) > _MANY:
        ax.fill_between(xs, values, step="mid", color=colour, alpha=0.8, linewidth=0)
    else:
        ax.bar(xs, values, color=colour, width=0.8)
    ax.set_xlim(0.4, len(values) + 0.6)


def layer_charts(analysis: Analysis, *, title: str) -> str | None:
    """Three stacked panels sharing the layer axis: activation memory, parameters, MACs (per image)."""
    layers = main_layers(analysis)
    if not layers:
        return None
    batch = analysis.batch_size
    fig = figure(figsize=(10, 7.5))
    axes = fig.subplots(3, 1, sharex=True)
    series = (
        ("activation memory (KiB / image)", [s.activation_bytes / batch / 1024 for s in layers], "#1f77b4"),
        ("parameters (millions)", [s.params / 1e6 for s in layers], "#ff7f0e"),
        ("MACs (millions / image)", [s.macs / batch / 1e6 for s in layers], "#2ca02c"),
    )
    for ax, (label, values, colour) in zip(axes, series):
        _bars(ax, values, colour)
        ax.set_ylabel(label, fontsize=8)
    if len(layers) <= 40:
        axes[-1].set_xticks(range(1, len(layers) + 1), [_short(s) for s in layers], rotation=90, fontsize=6.5)
    axes[-1].set_xlabel(f"layer ({len(layers)} that compute, pool or concatenate, in forward order)")
    axes[0].set_title(title)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.95, bottom=0.2 if len(layers) <= 40 else 0.08, hspace=0.12)
    return to_svg(fig, title=f"{title}: per-layer activation memory, parameters and MACs")


def receptive_field_chart(analysis: Analysis, *, title: str) -> str | None:
    """The network's receptive field (px, the larger axis) against depth: after each layer with a spatial output,
    the largest field of any feature map so far (a 1x1 projection shortcut sees less than the path it joins)."""
    sizes = [max(s.receptive_field.size) for s in main_layers(analysis) if s.receptive_field is not None]
    if not sizes:
        return None
    points = [(i, max(sizes[: i + 1])) for i in range(len(sizes))]
    fig = figure(figsize=(10, 3.2))
    ax = fig.subplots()
    ax.plot(range(1, len(points) + 1), [v for _, v in points], marker="." if len(points) <= _MANY else None,
            color="#9467bd")  # fmt: skip
    side = max(analysis.input_size[-2:])
    ax.axhline(side, color="grey", linestyle="--", linewidth=1)
    ax.annotate(f"input side {side} px", (1, side), xytext=(2, 3), textcoords="offset points", fontsize=8,
                color="grey")  # fmt: skip
    ax.set_xlabel("depth (layers with a spatial output, in forward order)")
    ax.set_ylabel("receptive field (px)")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    ax.set_title(f"{title}: receptive field against depth")
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.17)
    return to_svg(fig, title=f"{title}: receptive field against depth")


def _short(s: LayerStat) -> str:
    kind = s.kind.replace("Conv2d", "conv").replace("Linear", "fc").replace("MaxPool2d", "pool")
    return f"{kind} {'x'.join(map(str, s.out_shape))}"


def _analyze_for(name: str, run: RunData | None) -> Analysis:
    """The analysis of ``name``: at the run's input size, classes and options when there is a run."""
    info = model_info(name)
    if run is None:
        return analyze(name, training=False)
    cfg = run.config
    channels = int(cfg.get("in_channels") or info.input_size[0])
    side = int(cfg.get("image_size") or info.input_size[1])
    net = meta_model(name, num_classes=cfg.get("num_classes"), in_channels=channels,
                     **dict(cfg.get("model_kwargs") or {}))  # fmt: skip
    try:
        return analyze(net, (channels, side, side), training=False)
    except AnalysisError as exc:
        raise UserError(str(exc)) from None


def model_section(name: str, run: RunData | None = None, *, anchor: str | None = None) -> str:
    analysis = _analyze_for(name, run)
    where = "x".join(map(str, analysis.input_size))
    title = f"{name} at {where}" + (f" (as in run {run.label})" if run is not None else "")
    t = analysis.totals
    rf = analysis.receptive_field
    summary = (f"{t.params:,} params, {h.si(t.macs)} MACs, {h.mib(t.activation_bytes)} of activations per image; "
               f"receptive field {'global' if rf is None else f'{max(rf.size):g} px'}.")  # fmt: skip
    parts = [h.p(summary), layer_charts(analysis, title=title) or h.p("no layers", "note"),
             receptive_field_chart(analysis, title=name) or ""]
    return h.section(anchor or f"model-{name}", f"Model: {title}", parts)
