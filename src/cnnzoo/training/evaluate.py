"""``evaluate``: loss, top-1/top-5 and the confusion matrix of a network on a loader (training and ``cnnzoo eval``)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.loaders import Loader
from .runtime import all_reduce_sum


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Loader, *, num_classes: int, amp_dtype: torch.dtype | None = None,
    outputs: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """Loss, top-1/top-5 (micro-averaged, in %) and the confusion matrix (rows true, columns predicted).

    Under torchrun every rank passes its shard (no sample twice, none padded in) and the sums are reduced over the
    ranks, so the counts are exact. ``outputs``: a list that receives each batch's (logits, labels) on the CPU
    (for ensembles and predictions; it costs a device read per batch).
    """
    model.eval()
    device = loader.device
    sums = torch.zeros(3, dtype=acc_dtype(device), device=device)  # loss, top-1 hits, top-5 hits
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
    totals = all_reduce_sum(torch.cat([sums, sums.new_tensor([count])]))
    loss, top1, top5, count = totals.tolist()
    all_reduce_sum(confusion)
    count = max(count, 1.0)
    return {
        "val_loss": loss / count,
        "val_top1": 100.0 * top1 / count,
        "val_top5": 100.0 * top5 / count,
        "val_count": int(count),
        "confusion": confusion.view(num_classes, num_classes).cpu(),
    }


def acc_dtype(device: torch.device) -> torch.dtype:
    """What sums of losses and hits accumulate in: float64, float32 on MPS (which has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64
