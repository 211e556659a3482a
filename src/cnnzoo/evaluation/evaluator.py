"""``evaluate_checkpoint``, ``ensemble`` and ``predict``: trained networks on data, seen as the run's validation saw it.

Batches come from the trainer's loaders (:mod:`cnnzoo.data`: the run's validation view and normalisation), metrics
from :func:`cnnzoo.metrics.classification_metrics`, as in the trainer's validation (top-1/top-5 micro-averaged over
every sample, loss, confusion matrix). An ensemble averages its members' softmax outputs (Krizhevsky et al. 2012 §6:
"averaging the predictions of ... similar CNNs"); its metrics are ``classification_metrics`` over the averaged
log-probabilities. Members may be different architectures, with different
input sizes and normalisations, as long as they were trained on the same classes. Each network runs in its run's
memory layout and, unless ``amp`` is given, its run's precision (``Trained``: on the kind of device it trained on).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Data, FileSource, make_loader
from ..data.sources import IMAGE_EXTENSIONS
from ..device import amp_dtype_for, resolve_device
from ..errors import UserError
from ..metrics import classification_metrics
from .trained import Trained, eval_data, load_trained, resolve_checkpoint
from .tta import TTA_MODES, TestTimeAugmentation


def _view(trained: Trained, tta: str) -> tuple[nn.Module, int]:
    """The module to evaluate and the side of the images the loader must deliver."""
    if tta not in TTA_MODES:
        raise UserError(f"--tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")
    side = trained.image_size
    if tta == "10crop":
        side = trained.eval_resize
        if side <= trained.image_size:
            raise UserError(f"--tta 10crop: {trained.path} is evaluated at {trained.image_size} px without a larger "
                            f"view to crop from (eval resize {trained.eval_resize}); use --tta flip")
    return TestTimeAugmentation(trained.net, tta, size=trained.image_size), side


def _pass(trained: Trained, data: Data, *, tta: str, batch_size: int, amp: str | None, workers: int | None,
          outputs: list | None = None) -> tuple[dict[str, Any], list[str]]:
    """One pass of ``trained`` over ``data.val``: the trainer's metrics, and the files that failed to decode."""
    model, side = _view(trained, tta)
    device = next(trained.net.parameters()).device
    loader = make_loader(data, "val", geo=trained.geometry(side), batch_size=batch_size, device=device, seed=0,
                         workers=workers, channels_last=trained.channels_last)
    metrics = classification_metrics(model, loader, num_classes=len(data.classes), amp_dtype=trained.amp_dtype(amp),
                                     outputs=outputs)
    return metrics, [*data.skipped_files, *loader.skipped]


def _summary(metrics: dict[str, Any], classes: Sequence[str]) -> dict[str, Any]:
    """Top-1/top-5 accuracy and error (%), loss, count, and per-class accuracy (the confusion matrix's recall)."""
    confusion = metrics["confusion"]
    rows = confusion.sum(1).tolist()
    per_class = {
        name: {"accuracy": 100.0 * confusion[i, i].item() / rows[i] if rows[i] else None, "count": int(rows[i])}
        for i, name in enumerate(classes)
    }
    return {
        "count": metrics["val_count"],
        "top1": metrics["val_top1"],
        "top5": metrics["val_top5"],
        "top1_error": 100.0 - metrics["val_top1"],
        "top5_error": 100.0 - metrics["val_top5"],
        "loss": metrics["val_loss"],
        "per_class": per_class,
    }


def _setup(device: str | torch.device, amp: str | None, batch_size: int) -> torch.device:
    """The device, with ``amp`` and ``batch_size`` checked before anything is read."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    device = resolve_device(device)
    amp_dtype_for(amp, device)
    return device


def evaluate_checkpoint(
    weights: str | Path,
    *,
    model: str | None = None,
    data: str | None = None,
    split: str = "val",
    tta: str = "none",
    batch_size: int = 256,
    device: str | torch.device = "auto",
    amp: str | None = None,
    workers: int | None = None,
    val_fraction: float | None = None,
) -> dict[str, Any]:
    """Top-1/top-5, per-class accuracy and the confusion matrix of a checkpoint on ``data`` (default: its own).

    Returns a JSON-ready report; ``report["confusion"]`` is the matrix as nested lists (rows true, columns predicted).
    """
    device = _setup(device, amp, batch_size)
    trained = load_trained(weights, model=model, device=device)
    d = eval_data(trained, data, split=split, val_fraction=val_fraction)
    metrics, skipped = _pass(trained, d, tta=tta, batch_size=batch_size, amp=amp, workers=workers)
    return {
        "model": trained.name, "weights": str(trained.path), "data": d.spec, "split": split, "tta": tta,
        **_summary(metrics, d.classes), "classes": list(d.classes),
        "confusion": metrics["confusion"].tolist(), "skipped_files": skipped,
    }


class _Outputs:
    """A loader over precomputed network outputs (on the CPU), so that ``classification_metrics`` can score an
    ensemble."""

    device = torch.device("cpu")

    def __init__(self, outputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 4096) -> None:
        self.outputs, self.labels, self.batch_size = outputs, labels, batch_size

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(start_step * self.batch_size, len(self.labels), self.batch_size):
            yield self.outputs[i : i + self.batch_size], self.labels[i : i + self.batch_size]


def check_same_classes(members: Sequence[Trained]) -> None:
    """Refuse an ensemble whose members were trained on different class lists (names and order)."""
    first = members[0]
    for other in members[1:]:
        if first.classes is None or other.classes is None:  # plain state dicts: the output counts must agree
            if first.num_classes != other.num_classes:
                raise UserError(f"ensemble: {other.path} has {other.num_classes} outputs, {first.path} has "
                                f"{first.num_classes}")
            continue
        if other.classes != first.classes:
            a, b = first.classes, other.classes
            if len(a) != len(b):
                diff = f"{len(b)} classes vs {len(a)}"
            else:
                i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
                diff = f"class {i} is {b[i]!r} vs {a[i]!r}"
            raise UserError(f"ensemble: {other.path} was trained on other classes than {first.path} ({diff}); "
                            "members must share the class list")


def ensemble(
    members: Sequence[str | Path],
    *,
    data: str | None = None,
    split: str = "val",
    tta: str = "none",
    batch_size: int = 256,
    device: str | torch.device = "auto",
    amp: str | None = None,
    workers: int | None = None,
    val_fraction: float | None = None,
) -> dict[str, Any]:
    """Each member's and the softmax-averaged ensemble's metrics on ``data`` (default: the first member's data)."""
    if len(members) < 2:
        raise UserError("ensemble: give at least two checkpoints or run directories")
    check_distinct(members)
    device = _setup(device, amp, batch_size)
    nets = [load_trained(m, device=device) for m in members]
    check_same_classes(nets)
    spec = data or nets[0].data
    rows, skipped, log_sum, labels, classes = [], [], None, None, None
    for trained in nets:
        d = eval_data(trained, spec, split=split, val_fraction=val_fraction)
        outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        metrics, bad = _pass(trained, d, tta=tta, batch_size=batch_size, amp=amp, workers=workers, outputs=outputs)
        log_probs = torch.log_softmax(torch.cat([o for o, _ in outputs]), dim=1)
        y = torch.cat([t for _, t in outputs])
        if labels is None:
            labels, classes = y, d.classes
        elif not torch.equal(labels, y):
            raise UserError(f"ensemble: {trained.path} saw other samples than {nets[0].path} (files changed while "
                            "evaluating?)")
        log_sum = log_probs if log_sum is None else torch.logaddexp(log_sum, log_probs)
        skipped += [f for f in bad if f not in skipped]
        s = _summary(metrics, d.classes)
        rows.append({"weights": str(trained.path), "model": trained.name, **{k: s[k] for k in _KEYS}})
    mean_log = log_sum - math.log(len(nets))  # log of the mean softmax
    combined = _summary(classification_metrics(nn.Identity(), _Outputs(mean_log, labels), num_classes=len(classes)),
                        classes)
    return {
        "data": spec, "split": split, "tta": tta, "members": rows,
        "ensemble": {k: combined[k] for k in (*_KEYS, "per_class")}, "classes": list(classes),
        "skipped_files": skipped,
    }


_KEYS = ("count", "top1", "top5", "top1_error", "top5_error", "loss")


def check_distinct(members: Sequence[str | Path]) -> None:
    """Refuse a member named twice (``runs/a runs/a``, or ``runs/a runs/a/best.safetensors``): it would count twice
    in the average while the report lists an ensemble of distinct networks."""
    seen: dict[tuple[int, int], str | Path] = {}
    for member in members:
        stat = resolve_checkpoint(member).stat()
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            raise UserError(f"ensemble: {seen[key]} and {member} are the same checkpoint; name each member once")
        seen[key] = member


def image_paths(items: Sequence[str | Path]) -> list[str]:
    """Image files named on the command line; a folder stands for the image files in it (hidden ones excluded)."""
    paths: list[str] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise UserError(f"{path}: no image files in this folder")
            paths += [str(p) for p in found]
        elif path.is_file():
            paths.append(str(path))
        else:
            raise UserError(f"{path}: no such image file or folder")
    return paths


def predict(
    weights: str | Path,
    images: Sequence[str | Path],
    *,
    model: str | None = None,
    top_k: int = 5,
    tta: str = "none",
    batch_size: int = 64,
    device: str | torch.device = "auto",
    amp: str | None = None,
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """The ``top_k`` classes (names from the checkpoint) and probabilities of each image; unreadable images are
    reported with ``"error"`` instead of predictions. ``workers``: decoding processes (default: the cores', none
    for a single batch)."""
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k}")
    device = _setup(device, amp, batch_size)
    trained = load_trained(weights, model=model, device=device)
    net, side = _view(trained, tta)
    return top_k_of_images(net, trained, image_paths(images), top_k=top_k, side=side, batch_size=batch_size,
                           device=device, amp_dtype=trained.amp_dtype(amp), workers=workers)


def top_k_of_images(net: Any, trained: Trained, paths: list[str], *, top_k: int, side: int | None = None,
                    batch_size: int = 64, device: torch.device = torch.device("cpu"),
                    amp_dtype: torch.dtype | None = None, workers: int | None = None) -> list[dict[str, Any]]:
    """``predict``'s rows for ``paths`` through ``net`` (a network, or an exported file behind the module
    interface), prepared with ``trained``'s validation view; an unreadable image gets ``"error"``."""
    classes = trained.classes or tuple(str(i) for i in range(trained.num_classes))
    data = Data("predict", classes, FileSource([], []), FileSource(paths, [0] * len(paths)), trained.in_channels,
                trained.mean, trained.std)
    loader = make_loader(data, "val", geo=trained.geometry(side), batch_size=batch_size, device=device, seed=0,
                         workers=workers, channels_last=trained.channels_last,
                         announce_skipped=False)  # each unreadable image gets its own "error" row
    outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
    classification_metrics(net, loader, num_classes=len(classes), amp_dtype=amp_dtype, outputs=outputs)
    skipped = dict.fromkeys(loader.skipped)
    probs = iter(torch.softmax(torch.cat([o for o, _ in outputs]), dim=1) if outputs else [])
    k = min(top_k, len(classes))
    results = []
    for path in paths:
        if path in skipped:
            results.append({"image": path, "error": "cannot decode this image (skipped)"})
            continue
        top = next(probs).topk(k)
        results.append({"image": path, "top": [{"class": classes[i], "probability": v}
                                               for v, i in zip(top.values.tolist(), top.indices.tolist())]})
    return results


__all__ = ["check_distinct", "check_same_classes", "ensemble", "evaluate_checkpoint", "image_paths", "predict",
           "top_k_of_images"]
