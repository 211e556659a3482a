"""The zoo's two pictures: the ILSVRC winners by year (CS231n lecture 9) and accuracy against MACs."""

from __future__ import annotations

import math

from .ilsvrc import HUMAN_TOP5_ERROR_PCT, ILSVRC_WINNERS
from .svg import figure, to_svg
from .zoo import PANELS, ZooRow


def ilsvrc_chart() -> str:
    """Top-5 error of each year's winner, the network's depth above its bar, and the human reference line."""
    fig = figure(figsize=(8.5, 3.8))
    ax = fig.subplots()
    xs = range(len(ILSVRC_WINNERS))
    colours = ["#9e9e9e" if w.depth_layers is None else "#1f77b4" for w in ILSVRC_WINNERS]
    ax.bar(xs, [w.top5_error_pct for w in ILSVRC_WINNERS], color=colours, width=0.65)
    for x, w in zip(xs, ILSVRC_WINNERS):
        depth = "shallow" if w.depth_layers is None else f"{w.depth_layers} layers"
        ax.annotate(f"{w.top5_error_pct:g}%\n{depth}", (x, w.top5_error_pct), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax.axhline(HUMAN_TOP5_ERROR_PCT, color="#d62728", linestyle="--", linewidth=1)
    ax.annotate(f"human {HUMAN_TOP5_ERROR_PCT:g}%", (-0.45, HUMAN_TOP5_ERROR_PCT), xytext=(0, 3),
                textcoords="offset points", ha="left", color="#d62728", fontsize=8)  # fmt: skip
    ax.set_xticks(list(xs), [f"{w.year}\n{w.name}" for w in ILSVRC_WINNERS], fontsize=7.5)
    ax.set_ylabel("top-5 error (%), ILSVRC test")
    ax.set_ylim(0, max(w.top5_error_pct for w in ILSVRC_WINNERS) * 1.25)
    ax.set_title("ImageNet Large Scale Visual Recognition Challenge (ILSVRC) winners")
    ax.grid(axis="x", visible=False)
    return to_svg(fig, title="ILSVRC winners: top-5 error by year, with depth", tight=True)


def bubble_chart(rows: list[ZooRow]) -> str | None:
    """One panel per data set: reported error against MACs per image (log), bubble area proportional to params."""
    panels = [(key, title) for key, title, _ in PANELS if any(key in r.reported for r in rows)]
    if not panels:
        return None
    cols = 2 if len(panels) > 1 else 1
    nrows = math.ceil(len(panels) / cols)
    fig = figure(figsize=(7.2 * cols, 5.2 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    biggest = max(r.params for r in rows)
    families = sorted({r.family for r in rows})
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"]  # 20 distinct colours: one per family (the zoo has 14)
    colour = {f: tab20(i % 20) for i, f in enumerate(families)}
    for ax, (key, title) in zip(axes, panels):
        points = [r for r in rows if key in r.reported and r.macs > 0]
        ax.scatter([r.macs for r in points], [r.reported[key].value_pct for r in points],
                   s=[1500 * r.params / biggest + 8 for r in points], color=[colour[r.family] for r in points],
                   alpha=0.45, edgecolors="k", linewidths=0.5)  # fmt: skip
        for r in points:
            ax.annotate(r.name, (r.macs, r.reported[key].value_pct), fontsize=6, ha="center", va="bottom",
                        xytext=(0, 2), textcoords="offset points")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("MACs per image at the native input (log scale; FLOPs = 2 x MACs)")
        ax.set_ylabel(title)
        ax.set_title(f"{title.split(' error')[0]}: {len(points)} models")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles = [axes[0].scatter([], [], color=colour[f], alpha=0.45, edgecolors="k", linewidths=0.5, s=40, label=f)
               for f in families]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=min(len(families), 8), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5, -0.04), title=f"family (bubble area = parameters; largest {biggest / 1e6:.0f}M)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return to_svg(fig, title="reported error against MACs, bubble area = parameters", tight=True)
