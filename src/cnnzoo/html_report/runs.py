"""The page's runs section: run folders (as the trainer writes them) and ensemble reports, read defensively, and
their pictures: learning curves (several runs overlaid), throughput, confusion matrices, ensembles.

A crashed or still-running run may lack ``summary.json``, have a half-written last line in ``metrics.jsonl``, or no
metrics at all: :func:`read_run` keeps what parses and lists what is missing in ``RunData.problems``, so that the
page shows it instead of failing.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import html as h
from .html import figure, to_svg

RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "confusion_matrix.csv")


@dataclass(frozen=True)
class Confusion:
    """Rows are the true classes, columns the predicted ones."""

    classes: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class RunData:
    path: Path
    label: str  # the folder's name, for legends
    config: dict[str, Any]
    metrics: tuple[dict[str, Any], ...]  # one per epoch, in order
    summary: dict[str, Any] | None
    confusion: Confusion | None
    problems: tuple[str, ...] = ()  # what is missing or unreadable, one sentence each

    @property
    def model(self) -> str | None:
        return self.config.get("model") or (self.summary or {}).get("model")


@dataclass(frozen=True)
class EnsembleData:
    path: Path
    data: str
    members: tuple[tuple[str, str, float | None], ...]  # (label, model, top-1 %)
    top1: float | None
    problems: tuple[str, ...] = field(default=())


def _json(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """A run's JSON file as the mapping it must be; missing, unreadable or another JSON value: a problem and None."""
    if not path.exists():
        problems.append(f"{path.name} is missing")
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name} is unreadable ({type(exc).__name__})")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path.name} is not a JSON object (a {type(value).__name__})")
        return None
    return value


def _metrics(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    if not path.exists():
        problems.append("metrics.jsonl is missing: no epoch finished, no curves")
        return []
    rows, bad = [], 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        problems.append(f"metrics.jsonl is unreadable ({type(exc).__name__})")
        return []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), (int, float)):
            rows.append(row)
        else:
            bad += 1
    if bad:
        problems.append(f"metrics.jsonl: {bad} unreadable line{'s' if bad > 1 else ''} skipped (a crashed run?)")
    if not rows:
        problems.append("metrics.jsonl has no complete epoch: no curves")
    return rows


def _confusion(path: Path, problems: list[str]) -> Confusion | None:
    if not path.exists():
        problems.append("confusion_matrix.csv is missing")
        return None
    try:
        table = list(csv.reader(path.read_text().splitlines()))
        classes = tuple(table[0][1:])
        counts = tuple(tuple(int(v) for v in row[1:]) for row in table[1:])
        if not classes or len(counts) != len(classes) or any(len(r) != len(classes) for r in counts):
            raise ValueError("not square")
    except (OSError, ValueError, IndexError) as exc:
        problems.append(f"confusion_matrix.csv is unreadable ({exc})")
        return None
    return Confusion(classes, counts)


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in RUN_FILES)


def read_run(path: str | Path) -> RunData:
    """A run folder: at least one of its files must be there, else a one-line :class:`UserError`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such run folder")
    if not is_run_dir(path):
        raise UserError(f"{path}: not a run folder (none of {', '.join(RUN_FILES)} in it)")
    problems: list[str] = []
    config = _json(path / "config.json", problems)
    metrics = _metrics(path / "metrics.jsonl", problems)
    summary = _json(path / "summary.json", problems)
    if summary is None and metrics:
        problems.append("summary.json is missing: the run did not finish (crashed or still running)")
    confusion = _confusion(path / "confusion_matrix.csv", problems)
    if summary is not None and summary.get("interrupted"):
        problems.append(f"the run was interrupted ({summary.get('stop_reason') or 'stopped early'})")
    return RunData(path, path.resolve().name, config if isinstance(config, dict) else {}, tuple(metrics),
                   summary if isinstance(summary, dict) else None, confusion, tuple(problems))  # fmt: skip


def read_ensemble(path: str | Path) -> EnsembleData:
    """An ``ensemble.json`` written by ``cnnzoo ensemble``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        members = tuple((_member_label(m["weights"]), str(m.get("model", "")), _num(m.get("top1")))
                        for m in data["members"])  # fmt: skip
        return EnsembleData(path, str(data.get("data", "")), members, _num(data["ensemble"].get("top1")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not an ensemble report of `cnnzoo ensemble` ({type(exc).__name__}: {exc})") from None


def _member_label(weights: str) -> str:
    p = Path(weights)
    return p.name if p.suffix == "" else f"{p.parent.name}/{p.name}"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def read_inputs(paths: list[str | Path]) -> tuple[list[RunData], list[EnsembleData]]:
    """RUN_DIR arguments: run folders, and ``ensemble.json`` files (or folders holding only one)."""
    runs, ensembles = [], []
    for item in paths:
        p = Path(item)
        if p.is_file() and p.suffix == ".json":
            ensembles.append(read_ensemble(p))
        elif p.is_dir() and not is_run_dir(p) and (p / "ensemble.json").exists():
            ensembles.append(read_ensemble(p / "ensemble.json"))
        else:
            runs.append(read_run(p))
            if (p / "ensemble.json").exists():
                ensembles.append(read_ensemble(p / "ensemble.json"))
    return runs, ensembles


# ---- pictures and section ----------------------------------------------------------------------------------------


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


def _config_rows(runs: list[RunData]) -> str:
    rows = []
    for r in runs:
        cfg, s = r.config, r.summary or {}
        recipe = cfg.get("recipe", {}).get("name") if isinstance(cfg.get("recipe"), dict) else s.get("recipe")
        last = r.metrics[-1] if r.metrics else {}
        top1 = s.get("final_val_top1", last.get("val_top1"))
        epochs = f"{len(r.metrics)}/{cfg.get('epochs', s.get('planned_epochs', '?'))}"
        rows.append([h.cell(r.label), h.cell(str(r.model or "?")), h.cell(str(recipe or "?")),
                     h.cell(str(cfg.get("data", s.get("data", "?")))), h.cell(str(cfg.get("seed", s.get("seed", "?")))),
                     h.cell(str(cfg.get("image_size", "?")), numeric=True), h.cell(epochs, numeric=True),
                     h.cell("-" if top1 is None else f"{top1:.2f}", numeric=True)])  # fmt: skip
    return h.table(["run", "model", "recipe", "data", "seed", "image px", "epochs", "final val top-1 (%)"], rows)


def runs_section(runs: list[RunData], ensembles: list[EnsembleData]) -> str:
    parts = []
    for r in runs:
        for problem in r.problems:
            parts.append(h.p(f"{r.label}: {problem}", "problem"))
    curves = learning_curves(runs)
    curves = curves or h.p("No epoch finished in any run: no curves.", "problem")
    parts.append(f'<div class="side"><div class="wide">{curves}</div><div>{_config_rows(runs)}</div></div>')
    speed = throughput(runs)
    if speed:
        parts.append(speed)
    for r in runs:
        heat = confusion_heatmap(r)
        if heat:
            parts.append(f"<h3>{h.escape(r.label)}: confusion matrix (validation)</h3>{heat}")
    for e in ensembles:
        bars = ensemble_bars(e)
        parts.append(f"<h3>Ensemble {h.escape(str(e.path))}</h3>" + (bars or h.p("no member has a top-1", "note")))
    return h.section("runs", "Runs" if runs else "Ensembles", parts)
