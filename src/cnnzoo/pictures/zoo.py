"""The zoo's numbers for the report: one :class:`ZooRow` per registered model, from the registry and the analyzer.

The analyzer runs once per model at its native input and at its recipe's batch size (the training-memory estimate
needs the batch; MACs and activations per image are the batch's divided by it, both being linear in the batch).
Seventy-odd analyses take minutes on a small machine, so the rows are cached on disk, keyed by a hash of the
package's source files: any change to a model or to the analyzer recomputes them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import __version__
from ..data.cache import default_cache_dir

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
    from ..registry import model_info

    best: dict[str, Reported] = {}
    for r in model_info(name).results:
        key = panel_of(r.dataset, r.metric)
        if key is None or _ENSEMBLE.search(r.dataset):
            continue
        if key not in best or r.value < best[key].value_pct:
            best[key] = Reported(r.value, r.dataset, r.source)
    return best


def _row(name: str) -> ZooRow:
    from ..analysis import analyze
    from ..registry import model_info
    from ..training import get_recipe

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
    path = (cache_dir or default_cache_dir()) / f"zoo-{source_hash()}.json"
    cached: dict[str, dict] = {}
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    rows, fresh = [], 0
    missing = sum(1 for name in names if _decode(cached.get(name)) is None)
    if missing and progress:
        print(f"analysing {missing} models once (cached afterwards in {path.parent})", file=sys.stderr, flush=True)
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
    if fresh:
        if live:
            print(file=sys.stderr)
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
