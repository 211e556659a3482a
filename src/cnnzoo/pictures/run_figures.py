"""Pictures of training runs: learning curves (several runs overlaid), throughput, confusion matrices, ensembles."""

from __future__ import annotations

from typing import Any

from .runs import EnsembleData, RunData
from .svg import figure, to_svg


def _series(run: RunData, key: str) -> tuple[list[float], list[float]]:
    pairs = [(row["epoch"], row[key]) for row in run.metrics if isinstance(row.get(key), (int, float))]
    return [e for e, _ in pairs], [v for _, v in pairs]


def _integer_epochs(*axes: object) -> None:
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # type: ignore[attr-defined]


def learning_curves(runs: list[RunData]) -> str | None:
    """Loss (train dashed, validation solid; learning rate dotted on a second axis) and top-1, against epoch."""
    runs = [r for r in runs if r.metrics]
    if not runs:
        return None
    fig = figure(figsize=(11, 4))
    loss_ax, top1_ax = fig.subplots(1, 2)
    lr_ax = loss_ax.twinx()
    for i, run in enumerate(runs):
        colour = f"C{i % 10}"
        for ax, key, style, label in ((loss_ax, "train_loss", "--", "train"), (loss_ax, "val_loss", "-", "val"),
                                      (top1_ax, "train_top1", "--", "train"), (top1_ax, "val_top1", "-", "val")):
            xs, ys = _series(run, key)
            ax.plot(xs, ys, style, color=colour, marker="o" if len(xs) < 30 else None, markersize=3,
                    label=f"{run.label} {label}")  # fmt: skip
        xs, ys = _series(run, "lr")
        lr_ax.plot(xs, ys, ":", color=colour, linewidth=1, label=f"{run.label} lr")
    loss_ax.set(xlabel="epoch", ylabel="loss (train --, val -)", title="loss and learning rate")
    lr_ax.set_ylabel("learning rate (dotted)")
    lr_ax.grid(False)
    lr_ax.spines["right"].set_visible(True)
    top1_ax.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="top-1 accuracy (train --, val -)")
    top1_ax.legend(fontsize=7, loc="lower right")
    _integer_epochs(loss_ax, top1_ax)
    fig.subplots_adjust(left=0.07, right=0.93, bottom=0.13, top=0.91, wspace=0.3)
    names = ", ".join(r.label for r in runs)
    return to_svg(fig, title=f"learning curves of {names}")


def throughput(runs: list[RunData]) -> str | None:
    """Training images per second, per epoch, per run."""
    runs = [r for r in runs if _series(r, "images_per_s")[0]]
    if not runs:
        return None
    fig = figure(figsize=(5.5, 3))
    ax = fig.subplots()
    for i, run in enumerate(runs):
        xs, ys = _series(run, "images_per_s")
        ax.plot(xs, ys, marker="o", markersize=3, color=f"C{i % 10}", label=run.label)
    ax.set(xlabel="epoch", ylabel="training images / s", title="throughput per epoch")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    _integer_epochs(ax)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.17, top=0.89)
    return to_svg(fig, title="training throughput per epoch")


def confusion_heatmap(run: RunData) -> str | None:
    fig = confusion_figure(run)
    return None if fig is None else to_svg(fig, title=f"confusion matrix of {run.label}")


def confusion_figure(run: RunData) -> Any:
    """Rows: true class, columns: predicted; counts written in the cells when there are few classes."""
    if run.confusion is None:
        return None
    classes, counts = run.confusion.classes, run.confusion.counts
    n = len(classes)
    side = min(max(3.2, 0.38 * n + 1.5), 12)
    fig = figure(figsize=(side + 1, side))
    ax = fig.subplots()
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8, label="images")
    if n <= 40:
        ax.set_xticks(range(n), classes, rotation=90 if max(map(len, classes)) > 3 else 0, fontsize=7)
        ax.set_yticks(range(n), classes, fontsize=7)
    if n <= 20:
        peak = max(max(row) for row in counts) or 1
        for i, row in enumerate(counts):
            for j, v in enumerate(row):
                if v:
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                            color="white" if v > peak / 2 else "black")  # fmt: skip
    ax.grid(False)
    ax.set(xlabel="predicted class", ylabel="true class", title=f"confusion matrix: {run.label}")
    return fig


def ensemble_bars(ensemble: EnsembleData) -> str | None:
    """Each member's top-1 and the ensemble's, as horizontal bars."""
    rows = [(f"{label} ({model})", top1) for label, model, top1 in ensemble.members if top1 is not None]
    if ensemble.top1 is not None:
        rows.append((f"ensemble of {len(ensemble.members)} (mean softmax)", ensemble.top1))
    if not rows:
        return None
    fig = figure(figsize=(7, 0.45 * len(rows) + 1.2))
    ax = fig.subplots()
    colours = ["#1f77b4"] * (len(rows) - 1) + ["#d62728" if ensemble.top1 is not None else "#1f77b4"]
    ax.barh(range(len(rows)), [v for _, v in rows], color=colours)
    for y, (_, v) in enumerate(rows):
        ax.annotate(f"{v:.2f}%", (v, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.invert_yaxis()
    low = min(v for _, v in rows)
    ax.set_xlim(max(0.0, low - 2 * (100 - low) - 1), 100.5)
    ax.set(xlabel="top-1 accuracy (%)", title=f"ensemble on {ensemble.data}")
    fig.tight_layout()
    return to_svg(fig, title=f"ensemble {ensemble.path.name} against its members", tight=True)
