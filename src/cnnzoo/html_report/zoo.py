"""The page's zoo section: the ILSVRC winners by year (CS231n lecture 9), reported error against MACs, and a
sortable table of every registered model.

The ILSVRC numbers are data, each with its source: the paper that reports it, or the ILSVRC results of that year
(image-net.org/challenges/LSVRC/<year>/results); error rates are the test-set top-5 errors of the winning (ensemble)
entries. The models' numbers (:class:`ZooRow`) come from the registry and the analyzer, run once per model at its
native input and at its recipe's batch size (the training-memory estimate needs the batch; MACs and activations per
image are the batch's divided by it, both being linear in the batch). Seventy-odd analyses take minutes on a small
machine, so the rows are cached on disk, keyed by a hash of the package's source files: any change to a model or to
the analyzer recomputes them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ..analysis import analyze
from ..data.cache import usable_cache_dir
from ..registry import model_info
from ..training import get_recipe
from ..version import __version__
from . import html as h
from .html import figure, to_svg

# ---- the ILSVRC winners -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Winner:
    """One ILSVRC classification entry: ``depth_layers`` is ``None`` for the shallow (non-CNN) winners."""

    year: int
    name: str
    top5_error_pct: float
    depth_layers: int | None
    source: str
    arxiv: str | None = None


ILSVRC_WINNERS: tuple[Winner, ...] = (
    Winner(2010, "NEC-UIUC", 28.2, None, "ILSVRC 2010 results (image-net.org/challenges/LSVRC/2010), Lin et al."),
    Winner(2011, "XRCE", 25.8, None, "ILSVRC 2011 results (image-net.org/challenges/LSVRC/2011), Perronnin et al."),
    Winner(2012, "AlexNet", 16.4, 8, "Krizhevsky et al. 2012, Table 2 (5 CNNs, test)"),
    Winner(2013, "ZFNet", 11.7, 8, "Zeiler & Fergus 2014, Table 2 (ensemble, test; the ILSVRC 2013 entry)",
           "1311.2901"),
    Winner(2014, "VGG", 7.3, 19, "Simonyan & Zisserman 2015, Table 7 (ILSVRC 2014 submission, test)", "1409.1556"),
    Winner(2014, "GoogLeNet", 6.7, 22, "Szegedy et al. 2015, Table 2 (7 models, 144 crops, test)", "1409.4842"),
    Winner(2015, "ResNet", 3.57, 152, "He et al. 2016, Table 5 (ensemble, test)", "1512.03385"),
)

# Russakovsky et al. 2015 (IJCV, arXiv:1409.0575), §6.4: a trained human annotator, top-5 error on 1,500 test images.
HUMAN_TOP5_ERROR_PCT = 5.1
HUMAN_SOURCE = "Russakovsky et al. 2015, §6.4 (human annotator, 1,500 test images)"


# ---- the models' numbers -----------------------------------------------------------------------------------------

# The bubble chart's panels: (key, y-axis title, metric); :func:`panel_of` sorts a paper result into one.
PANELS: tuple[tuple[str, str, str], ...] = (
    ("imagenet_top1", "ImageNet top-1 error (%)", "top1_error_pct"),
    ("imagenet_top5", "ImageNet top-5 error (%)", "top5_error_pct"),
    ("cifar10", "CIFAR-10 error (%)", "top1_error_pct"),
    ("cifar100", "CIFAR-100 error (%)", "top1_error_pct"),
)
# An ensemble of several networks is not the network: such entries are left out of the per-model points.
_ENSEMBLE = re.compile(r"ensemble|\b\d+\s*(models|convnets|cnns)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Reported:
    """The number shown for a model in one panel: the lowest single-model error its registry entry lists."""

    value_pct: float
    dataset: str
    source: str


@dataclass(frozen=True)
class ZooRow:
    name: str
    family: str
    paper: str
    input_size: tuple[int, int, int]
    params: int
    macs: int  # per image, at input_size
    activation_bytes: int  # per image, fp32, every newly allocated layer output (the lecture's memory)
    batch_size: int  # the recipe's
    train_memory_bytes: int | None  # at batch_size, SGD with momentum, fp32
    reported: dict[str, Reported]  # panel key -> number


def panel_of(dataset: str, metric: str) -> str | None:
    """Which panel a paper result belongs to: ``('CIFAR-10 test (+aug)', 'top1_error_pct') -> 'cifar10'``."""
    text = dataset.lower()
    if "cifar-100" in text or "cifar100" in text:
        return "cifar100" if metric == "top1_error_pct" else None
    if "cifar-10" in text or "cifar10" in text:
        return "cifar10" if metric == "top1_error_pct" else None
    if "imagenet" in text or "ilsvrc" in text:
        return {"top1_error_pct": "imagenet_top1", "top5_error_pct": "imagenet_top5"}.get(metric)
    return None


def reported_errors(name: str) -> dict[str, Reported]:
    """Per panel, the lowest single-model error the registry lists for ``name`` (ensembles left out)."""
    best: dict[str, Reported] = {}
    for r in model_info(name).results:
        key = panel_of(r.dataset, r.metric)
        if key is None or _ENSEMBLE.search(r.dataset):
            continue
        if key not in best or r.value < best[key].value_pct:
            best[key] = Reported(r.value, r.dataset, r.source)
    return best


def _row(name: str) -> ZooRow:
    info = model_info(name)
    batch = get_recipe(info.recipe).batch_size if info.recipe else 1
    t = analyze(name, batch_size=batch).totals
    return ZooRow(name, info.family, info.paper, tuple(info.input_size), info.params, t.macs // batch,
                  t.activation_bytes // batch, batch, t.train_memory_bytes, reported_errors(name))  # fmt: skip


# What the cached numbers depend on: the models and their blocks, the registry, the analyzer, the recipes' batches.
_COUNTED = ("models", "layers", "analysis", "registry.py", "training/recipes.py")


def source_hash() -> str:
    """Hash of the package version and of the source files the numbers depend on: the cache key."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(__version__.encode())
    for part in _COUNTED:
        for path in sorted((root / part).rglob("*.py")) if (root / part).is_dir() else [root / part]:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def zoo_rows(names: list[str], *, cache_dir: Path | None = None, progress: bool = True) -> list[ZooRow]:
    """The rows of ``names``; cached ones are read, missing ones analysed (and the cache rewritten)."""
    folder = usable_cache_dir(cache_dir)  # None (after one warning): analyse, and neither say nor try to cache
    path = folder / f"zoo-{source_hash()}.json" if folder is not None else None
    cached: dict[str, dict] = {}
    try:
        cached = json.loads(path.read_text()) if path is not None else {}
    except (OSError, ValueError):
        pass
    if not isinstance(cached, dict):  # a cache file that is not the rows' mapping: rebuilt
        cached = {}
    rows, fresh = [], 0
    missing = sum(1 for name in names if _decode(cached.get(name)) is None)
    if missing and progress:
        where = f"cached afterwards in {folder}" if folder is not None else "not cached"
        print(f"analysing {missing} models once ({where})", file=sys.stderr, flush=True)
    live = progress and sys.stderr.isatty()
    for i, name in enumerate(names, 1):
        row = _decode(cached.get(name))
        if row is None:
            if live:
                print(f"\r  {name} ({i}/{len(names)})".ljust(60), end="", file=sys.stderr, flush=True)
            row = _row(name)
            cached[name] = asdict(row)
            fresh += 1
        rows.append(row)
    if fresh and live:
        print(file=sys.stderr)
    if fresh and path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cached))
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home: the report is still right, only the next one is as slow
    return rows


def _decode(data: dict | None) -> ZooRow | None:
    if not isinstance(data, dict):
        return None
    try:
        reported = {k: Reported(**v) for k, v in data["reported"].items()}
        return ZooRow(**{**data, "input_size": tuple(data["input_size"]), "reported": reported})
    except (KeyError, TypeError):
        return None


# ---- pictures and section ----------------------------------------------------------------------------------------


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


_ARXIV = re.compile(r"arXiv:(\d{4}\.\d{4,5})")


def _paper_cell(paper: str) -> str:
    """The citation as text; its arXiv id, if any, as a plain link (nothing is loaded from it)."""
    match = _ARXIV.search(paper)
    text = h.escape(paper)
    if match:
        text += f' <a href="https://arxiv.org/abs/{match.group(1)}">arXiv</a>'
    return f"<td>{text}</td>"


def zoo_section(names: list[str], *, cache_dir: Path | None = None) -> str:
    rows = zoo_rows(names, cache_dir=cache_dir)
    winners = [[h.cell(str(w.year)), h.cell(w.name), h.cell(f"{w.top5_error_pct:g}", numeric=True),
                h.cell("shallow" if w.depth_layers is None else str(w.depth_layers), numeric=True), h.cell(w.source)]
               for w in ILSVRC_WINNERS]  # fmt: skip
    winners.append([h.cell("-"), h.cell("human"), h.cell(f"{HUMAN_TOP5_ERROR_PCT:g}", numeric=True), h.cell("-"),
                    h.cell(HUMAN_SOURCE)])  # fmt: skip
    bubbles = bubble_chart(rows)
    titles = {key: title for key, title, _ in PANELS}
    table_rows = []
    for r in rows:
        c, hh, w = r.input_size
        errors = "; ".join(f"{titles[k].split(' (')[0]} {v.value_pct:g}%" for k, v in r.reported.items())
        detail = "; ".join(f"{v.dataset} [{v.source}]" for v in r.reported.values())
        first = next(iter(r.reported.values()), None)
        table_rows.append([
            h.cell(r.name), h.cell(r.family), h.cell(f"{c}x{hh}x{w}", hh),
            h.cell(f"{r.params:,}", r.params, numeric=True), h.cell(h.si(r.macs), r.macs, numeric=True),
            h.cell(h.mib(r.activation_bytes), r.activation_bytes, numeric=True),
            h.cell(f"{h.mib(r.train_memory_bytes)} @ {r.batch_size}", r.train_memory_bytes or 0, numeric=True),
            h.cell(errors or "-", first.value_pct if first else 1e9, title=detail), _paper_cell(r.paper),
        ])  # fmt: skip
    parts = [
        "<h3>ILSVRC winners (CS231n lecture 9)</h3>", ilsvrc_chart(),
        h.table(["year", "entry", "top-5 error (%)", "depth (layers)", "source"], winners),
        "<h3>Accuracy against operations</h3>",
        h.p("Each registered model with a paper-reported error: the lowest single-model number its registry entry "
            "lists per data set (ensembles left out; the table below names data set and source of each)."),
        bubbles or h.p("No model of this selection has a paper-reported error.", "note"),
        "<h3>Every model</h3>",
        h.p("Params exact; MACs (multiply-adds) and activation memory (fp32, every newly allocated layer output) "
            "per image at the native input; training memory at the recipe's batch size (SGD with momentum, fp32), "
            "all from the analyzer. Click a column header to sort.", "note"),
        h.table(["model", "family", "input", "params", "MACs", "activations", "training memory @ batch",
                 "reported error", "paper"], table_rows, sortable=True),  # fmt: skip
    ]
    return h.section("zoo", f"The zoo ({len(rows)} models)", parts)
