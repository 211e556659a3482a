"""The lab's figures, drawn from an experiment's lab.json record the way its paper draws them.

This module is the lab's one door to the report's figure code (:mod:`cnnzoo.html_report`: the matplotlib style, SVG
inlining, the HTML helpers and the run report): matplotlib without pyplot, SVG inline with text as paths, nothing
fetched. ``FIGURES[name](record)`` returns the experiment's figures as inline ``<svg>`` strings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import html_report
from ..errors import UserError
from ..html_report import html
from ..html_report.html import figure, to_svg

__all__ = ["FIGURES", "html", "save_svg", "write_run_report"]

Record = dict[str, Any]


def write_run_report(run_dir: Path, log: Callable[[str], None]) -> None:
    """``RUN_DIR/report.html``, as ``cnnzoo train`` writes it; a failure to draw is a warning line only."""
    try:
        html_report.write_run_report(run_dir)
    except (UserError, OSError, ValueError) as exc:
        log(f"cnnzoo: warning: no report.html for {run_dir} ({exc})")


def _mean_curve(runs: list[Record], key: str, x: str) -> tuple[list[float], list[float]]:
    """The runs' ``key`` averaged over seeds, per epoch (epochs that every run reached)."""
    n = min(len(r["curve"]) for r in runs)
    xs = [runs[0]["curve"][i][x] for i in range(n)]
    ys = [sum(r["curve"][i][key] for r in runs) / len(runs) for i in range(n)]
    return xs, ys


def _by_label(runs: list[Record]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in runs:
        groups[r["label"]].append(r)
    return groups


def _curves(ax: Any, runs: list[Record], keys: tuple[tuple[str, str], ...], x: str = "iteration",
            colours: dict[str, str] | None = None) -> None:
    for i, (label, group) in enumerate(_by_label(runs).items()):
        colour = (colours or {}).get(label, f"C{i % 10}")
        for key, style in keys:
            xs, ys = _mean_curve(group, key, x)
            ax.plot(xs, ys, style, color=colour, linewidth=1.6 if style == "-" else 1.0,
                    label=label if style == "-" or len(keys) == 1 else None)


def _svg(fig: Any, title: str) -> str:
    fig.tight_layout()
    return to_svg(fig, title=title, tight=True)


def _error_axes(ax: Any, record: Record, x: str = "iteration") -> None:
    split = "test" if record.get("scale") == "paper" else "validation"
    ax.set(xlabel="iterations" if x == "iteration" else x, ylabel=f"error (%): training dashed, {split} solid")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)


def degradation(record: Record) -> list[str]:
    """He et al. 2016 Fig. 6 (left, middle): training (dashed) and test (solid) error against iterations, plain
    networks on the left, ResNets on the right, one colour per depth."""
    fig = figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    runs = record["runs"]
    depths = sorted({r["depth"] for r in runs})
    colours = {f"{kind}-{d}": f"C{i}" for i, d in enumerate(depths) for kind in ("plain", "ResNet")}
    for ax, kind in zip(axes, ("plain", "ResNet")):
        _curves(ax, [r for r in runs if r["group"] == kind], (("train_error", "--"), ("val_error", "-")),
                colours=colours)
        ax.set_title(f"{kind} networks")
        _error_axes(ax, record)
    return [_svg(fig, "degradation: plain against residual networks, error against iterations (He et al. Fig. 6)")]


def _bars(ax: Any, labels: list[str], values: list[float], colours: list[str], fmt: str) -> None:
    ax.barh(range(len(values)), values, color=colours)
    for y, v in enumerate(values):
        ax.annotate(fmt.format(v), (v, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(values)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values) * 1.3 if max(values) > 0 else 1)
    ax.grid(axis="y", visible=False)


def small_filters(record: Record) -> list[str]:
    """The lecture's comparison as bars (parameters, multiply-adds, non-linearities, receptive field), then the two
    trained nets' error against iterations."""
    m = record["measurements"]
    fig = figure(figsize=(11, 2.6))
    axes = fig.subplots(1, 4)
    labels = ["3 x conv3x3", "1 x conv7x7"]
    for ax, key, title, fmt in ((axes[0], "params", "weights", "{:,.0f}"), (axes[1], "macs", "multiply-adds",
                                "{:,.0f}"), (axes[2], "relus", "non-linearities", "{:.0f}"),
                                (axes[3], "receptive_field", "receptive field (px)", "{:.0f}")):
        _bars(ax, labels, [m["stack"][key], m["single"][key]], ["#1f77b4", "#ff7f0e"], fmt)
        ax.set_title(title)
        ax.tick_params(axis="x", labelsize=7)
    c, side = m["channels"], m["side"]
    out = [_svg(fig, f"three 3x3 convolutions against one 7x7 at C={c}, {side}x{side} (Simonyan & Zisserman 2.3)")]
    if record["runs"]:
        fig = figure(figsize=(6, 3.6))
        ax = fig.subplots()
        _curves(ax, record["runs"], (("train_error", "--"), ("val_error", "-")))
        ax.set_title("trained: the two nets differ only in 3 x 3x3 vs 1 x 7x7")
        _error_axes(ax, record)
        out.append(_svg(fig, "the 3x3-stack net and the 7x7 net trained: error against iterations"))
    return out


def inception_cost(record: Record) -> list[str]:
    """Each module's multiply-adds as one bar, split by convolution (the lecture's per-branch 'Conv Ops')."""
    modules = record["measurements"]["modules"]
    fig = figure(figsize=(10, 2.8))
    ax = fig.subplots()
    for y, module in enumerate(modules):
        left = 0.0
        for i, conv in enumerate(module["convs"]):
            ax.barh(y, conv["macs"], left=left, color=f"C{i % 10}", edgecolor="white")
            if conv["macs"] > 0.06 * modules[0]["macs"]:
                ax.text(left + conv["macs"] / 2, y, f"{conv['name']}\n{conv['macs'] / 1e6:.0f}M", ha="center",
                        va="center", fontsize=7, color="white")
            left += conv["macs"]
        ax.annotate(f"{module['macs']:,} MACs, output depth {module['depth']}", (left, y), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(modules)), [m["name"] for m in modules])
    ax.invert_yaxis()
    ax.set_xlim(0, modules[0]["macs"] * 1.55)
    ax.set_xlabel("multiply-adds per image at 28x28x256 input (convolutions; FLOPs = 2 x MACs)")
    ax.grid(axis="y", visible=False)
    return [_svg(fig, "naive against bottleneck Inception module: multiply-adds per convolution")]


def vgg_memory(record: Record) -> list[str]:
    """The lecture's VGG16 table as two bar charts over its lines: memory (values per image) and parameters."""
    rows = record["measurements"]["rows"]
    fig = figure(figsize=(11, 5.2))
    mem_ax, par_ax = fig.subplots(2, 1, sharex=True)
    xs = range(len(rows))
    mem_ax.bar(xs, [r["memory"] / 1e6 for r in rows], color="#1f77b4")
    mem_ax.set_ylabel("memory (M values / image)")
    mem_ax.set_title("VGG16 per layer (CS231n lecture 9 table): memory early, parameters late")
    par_ax.bar(xs, [r["params"] / 1e6 for r in rows], color="#d62728")
    par_ax.set_ylabel("parameters (M, no biases)")
    par_ax.set_xticks(list(xs), [r["label"] for r in rows], rotation=90, fontsize=7)
    for ax in (mem_ax, par_ax):
        ax.grid(axis="x", visible=False)
    return [_svg(fig, "VGG16: activation memory and parameters per layer")]


def ensemble(record: Record) -> list[str]:
    """Each member's validation error, their mean, and the ensemble's (mean softmax), as bars (Krizhevsky et al.
    Table 2 as a picture)."""
    m = record["measurements"]
    labels = [f"member seed {s}" for s in m["member_seeds"]] + ["members' mean", f"ensemble of {len(m['members'])}"]
    values = [*m["members"], m["members_mean"], m["ensemble"]]
    colours = ["#1f77b4"] * len(m["members"]) + ["#7f7f7f", "#d62728"]
    fig = figure(figsize=(7, 0.42 * len(values) + 1.2))
    ax = fig.subplots()
    _bars(ax, labels, values, colours, "{:.2f}%")
    ax.set_xlabel("validation error (%)" if record.get("scale") != "paper" else "test error (%)")
    return [_svg(fig, "ensemble: members alone and their softmax average")]


def preact(record: Record) -> list[str]:
    """He et al. 2016b Fig. 6 style: training loss (dashed) and test error (solid) against iterations, original
    against pre-activation units."""
    fig = figure(figsize=(10, 3.6))
    loss_ax, err_ax = fig.subplots(1, 2)
    _curves(loss_ax, record["runs"], (("train_loss", "--"),))
    loss_ax.set(xlabel="iterations", ylabel="training loss", title="training loss")
    loss_ax.legend(fontsize=7)
    _curves(err_ax, record["runs"], (("train_error", "--"), ("val_error", "-")))
    err_ax.set_title("error")
    _error_axes(err_ax, record)
    return [_svg(fig, "original against pre-activation residual units: loss and error against iterations")]


def _per_label(record: Record, key: str) -> tuple[list[str], list[float]]:
    groups = _by_label(record["runs"])
    return list(groups), [sum(r[key] for r in g) / len(g) for g in groups.values()]


def wide_vs_deep(record: Record) -> list[str]:
    """Error against training time (the efficiency claim), and seconds per epoch measured side by side."""
    fig = figure(figsize=(10, 3.6))
    err_ax, time_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    _curves(err_ax, record["runs"], (("train_error", "--"), ("val_error", "-")), x="seconds")
    err_ax.set_title("error against training time")
    _error_axes(err_ax, record, x="training seconds")
    labels, seconds = _per_label(record, "seconds_per_epoch")
    _bars(time_ax, labels, seconds, [f"C{i}" for i in range(len(labels))], "{:.2f} s")
    time_ax.set(xlabel="training seconds per epoch", title="time per epoch")
    return [_svg(fig, "wide-shallow against thin-deep residual network: error against time, time per epoch")]


def stochastic_depth(record: Record) -> list[str]:
    """Huang et al. 2016 Fig. 3 style: test error (solid) and training loss against epochs, constant depth against
    stochastic depth; seconds per epoch in the legend."""
    fig = figure(figsize=(10, 3.6))
    err_ax, loss_ax = fig.subplots(1, 2)
    _curves(err_ax, record["runs"], (("val_error", "-"),), x="epoch")
    labels, seconds = _per_label(record, "seconds_per_epoch")
    err_ax.legend([f"{label} ({s:.2f} s/epoch)" for label, s in zip(labels, seconds)], fontsize=7)
    err_ax.set(xlabel="epoch", ylabel="validation error (%)" if record.get("scale") != "paper" else
               "test error (%)", title="error")
    err_ax.set_ylim(bottom=0)
    _curves(loss_ax, record["runs"], (("train_loss", "--"),), x="epoch")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="training loss")
    loss_ax.legend(fontsize=7)
    return [_svg(fig, "constant depth against stochastic depth: error and loss against epochs")]


def fractal_columns(record: Record) -> list[str]:
    """The trained FractalNet evaluated whole and by its deepest column alone (Larsson et al. Table 1's two
    rows), beside its training curve."""
    m = record["measurements"]
    fig = figure(figsize=(10, 3.4))
    curve_ax, bar_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    _curves(curve_ax, record["runs"], (("train_error", "--"), ("val_error", "-")))
    curve_ax.set_title("training with drop-path (whole net evaluated)")
    _error_axes(curve_ax, record)
    depths = m.get("column_depths", [m["column_depth"]])
    errors = m.get("column_errors", [m["column_error"]])
    _bars(bar_ax, ["whole network", *(f"column of {d} convs alone" for d in depths)], [m["full_error"], *errors],
          ["#1f77b4", *(["#ff7f0e"] * (len(depths) - 1)), "#d62728"], "{:.2f}%")
    bar_ax.set(xlabel="final validation error (%)", title="one trained net, evaluated whole and by column")
    return [_svg(fig, "FractalNet: the whole network against its deepest column alone")]


def dense_efficiency(record: Record) -> list[str]:
    """Huang et al. 2017 Fig. 4 (middle): error against parameters, one line per family."""
    fig = figure(figsize=(6.5, 4))
    ax = fig.subplots()
    families: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for label, group in _by_label(record["runs"]).items():
        error = sum(r["final_val_error"] for r in group) / len(group)
        families[group[0]["group"]].append((group[0]["params"], error, label))
    for i, (family, points) in enumerate(sorted(families.items())):
        points.sort()
        ax.plot([p for p, _, _ in points], [e for _, e, _ in points], "-o", color=f"C{i}", label=family)
        for p, e, label in points:
            ax.annotate(label, (p, e), xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.set(xlabel="parameters", ylabel="final validation error (%)" if record.get("scale") != "paper" else
           "final test error (%)", title="error against parameters")
    ax.set_xscale("log")
    ax.legend(fontsize=8)
    return [_svg(fig, "DenseNet-BC against ResNet: error against parameters (Huang et al. Fig. 4)")]


def squeeze(record: Record) -> list[str]:
    """AlexNet against SqueezeNet: parameters, file sizes and multiply-adds side by side (log scale), each pair's
    ratio written above it."""
    m = record["measurements"]
    nets = (m["alexnet"], m["squeezenet"])
    quantities = (("params", "parameters"), ("file_bytes", "safetensors bytes"), ("gzip_bytes", "gzip bytes"),
                  ("macs", "multiply-adds"))
    fig = figure(figsize=(9, 3.6))
    ax = fig.subplots()
    width = 0.38
    for i, (key, _) in enumerate(quantities):
        for j, (net, colour) in enumerate(zip(nets, ("#7f7f7f", "#2ca02c"))):
            ax.bar(i + (j - 0.5) * width, net[key], width, color=colour, label=net["name"] if i == 0 else None)
        ax.annotate(f"{nets[0][key] / nets[1][key]:.1f}x", (i, max(nets[0][key], nets[1][key])), xytext=(0, 3),
                    textcoords="offset points", ha="center", fontsize=8)
    ax.set_xticks(range(len(quantities)), [label for _, label in quantities])
    ax.set_yscale("log")
    ax.set_ylabel("count (log scale)")
    ax.set_title("AlexNet against SqueezeNet 1.0 (ratio AlexNet / SqueezeNet above each pair)")
    ax.legend(fontsize=8)
    ax.grid(axis="x", visible=False)
    return [_svg(fig, "AlexNet against SqueezeNet: parameters, file sizes, multiply-adds")]


FIGURES: dict[str, Callable[[Record], list[str]]] = {
    "degradation": degradation, "small-filters": small_filters, "inception-cost": inception_cost,
    "vgg-memory": vgg_memory, "ensemble": ensemble, "preact": preact, "wide-vs-deep": wide_vs_deep,
    "stochastic-depth": stochastic_depth, "fractal-columns": fractal_columns, "dense-efficiency": dense_efficiency,
    "squeeze": squeeze,
}


def save_svg(svg: str, path: Path) -> Path:
    """A figure of this module as a standalone SVG file (the README's picture)."""
    standalone = svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/'
                             'xlink" ', 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(standalone, encoding="utf-8")
    return path
