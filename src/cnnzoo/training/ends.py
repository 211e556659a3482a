"""How a run ends: ``finish`` writes summary.json (every run, stopped or not); a run stopped mid-epoch (a signal, a
data-loading worker that died) is checkpointed first (``_stop_mid_epoch``), and weights that became non-finite are
never saved (``check_weights``).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from .. import checkpoint as ckpt
from .guard import NonFiniteLoss
from .loss import _reduced
from .run import Run
from .run_files import summary
from .runtime import all_reduce_max
from .state import save


def _stop_mid_epoch(run: Run, epoch: int, done: int, seen_before: int, t0: float, reason: str) -> None:
    """Checkpoint after step ``done`` of ``epoch`` (weights checked first) and write the summary with ``reason``."""
    run.train_seconds += time.perf_counter() - t0
    partial = _reduced(run, seen_before)
    run.images_seen += int(partial[3])
    check_weights(run, f"epoch {epoch + 1}, step {done}")
    save(run, epoch, done, partial)
    finish(run, interrupted=True, reason=reason)


def check_weights(run: Run, where: str) -> None:
    """Weights that became non-finite (``checkpoint.unusable_tensors``) are never saved, as ``last`` or ``best``:
    training stops with :class:`NonFiniteLoss`, the last checkpoint stays the last good one."""
    bad = ckpt.unusable_tensors(run.net)
    # every rank decides alike (batch-norm statistics may differ between ranks): one stops, all stop
    if not all_reduce_max(torch.tensor([len(bad)], device=run.device)).item():
        return
    bad = bad or ["on another process"]
    message = (f"{len(bad)} tensors of the network became non-finite (inf/NaN; first {bad[0]}) by {where}; "
               f"training stopped and nothing of it was saved, {run.last_good}. Lower the learning rate "
               "(--set lr=...)")
    finish(run, interrupted=True, reason=message)
    raise NonFiniteLoss(message, run.files.out)


def finish(run: Run, *, interrupted: bool, reason: str | None = None) -> dict[str, Any]:
    """summary.json (every rank takes part: the skipped files are gathered from all of them)."""
    skipped = run.runtime.union([*run.data.skipped_files, *run.train_loader.skipped, *run.val_loader.skipped])
    result = summary(run.record, run.data, run.history, run.best, run.train_seconds, run.images_seen,
                     interrupted=interrupted, net=run.net, skipped_files=skipped, stop_reason=reason)
    run.files.write_summary(result)
    return result
