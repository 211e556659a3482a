"""How well a classifier does on a loader: ``classification_metrics`` (loss, top-1/top-5, the confusion matrix),
used by the trainer's validation and by ``cnnzoo eval``/``ensemble``/``predict``; ``confusion_csv`` writes the matrix.

Top-1/top-5 are micro-averaged over every sample, in %; the confusion matrix has the true classes as rows and the
predicted ones as columns (scikit-learn's orientation). Sums stay on the device and are read once at the end.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data.loaders import Loader
from .device import sum_dtype


@torch.no_grad()
def classification_metrics(
    model: nn.Module, loader: Loader, *, num_classes: int, amp_dtype: torch.dtype | None = None,
    outputs: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """``val_loss``, ``val_top1``, ``val_top5``, ``val_count`` and ``confusion`` of ``model`` (eval mode) on ``loader``.

    ``reduce``: sums a tensor over the processes in place (the trainer under torchrun: every rank passes its shard,
    no sample twice, none padded in, so the counts are exact). ``outputs``: a list that receives each batch's
    (logits, labels) on the CPU (for ensembles and predictions; it costs a device read per batch).
    """
    model.eval()
    device = loader.device
    sums = torch.zeros(3, dtype=sum_dtype(device), device=device)  # loss, top-1 hits, top-5 hits
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    count, k = 0, min(5, num_classes)
    for x, y in loader.epoch(0):
        if not len(y):  # no file of this batch could be decoded (the loader reported them)
            continue
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
            logits = model(x)
        logits = logits.float()
        if outputs is not None:
            outputs.append((logits.cpu(), y.cpu()))
        top = logits.topk(k, dim=1).indices
        hits1, hitsk = (top[:, 0] == y).sum(), (top == y[:, None]).any(1).sum()
        sums += torch.stack([F.cross_entropy(logits, y, reduction="sum"), hits1, hitsk]).to(sums.dtype)
        confusion.scatter_add_(0, y * num_classes + top[:, 0], torch.ones_like(y))  # bincount would sync on CUDA
        count += len(y)  # known on the host: no device read
    totals = torch.cat([sums, sums.new_tensor([count])])
    if reduce is not None:
        reduce(totals)
        reduce(confusion)
    loss, top1, top5, count = totals.tolist()
    count = max(count, 1.0)
    return {
        "val_loss": loss / count,
        "val_top1": 100.0 * top1 / count,
        "val_top5": 100.0 * top5 / count,
        "val_count": int(count),
        "confusion": confusion.view(num_classes, num_classes).cpu(),
    }


def confusion_csv(confusion: torch.Tensor, classes: tuple[str, ...] | list[str]) -> str:
    """Rows are the true classes, columns the predicted ones (scikit-learn's orientation)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["true \\ predicted", *classes])
    for name, row in zip(classes, confusion.tolist()):
        writer.writerow([name, *row])
    return buffer.getvalue()


__all__ = ["classification_metrics", "confusion_csv"]
