"""``Run``: one training run in progress (what ``prepare`` builds, the counters each epoch advances), its saved state,
and ``RunResult``: what a finished run returns.

The training state in ``last.pt``: ``save`` writes it (with the ``last`` weights), ``restore`` reads it back. It holds
tensors and plain data only (``torch.load(weights_only=True)`` reads it): weights, optimizer, plateau and scaler
state, epoch and step, the epoch's partial sums, the history, the best epoch, and the default random streams, so a
resumed run continues bit-identically on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import checkpoint as ckpt
from ..data import Data
from ..data.loaders import Loader
from ..weights import load_weights
from .config import RunConfig
from .distributed import RankStreams, Runtime, rng_state, set_rng_state
from .recipes import Recipe
from .run_files import RunFiles
from .schedules import Plateau
from .stopping import StepGuard


@dataclass
class Run:
    """One run in progress: what ``prepare`` built, and the counters the epochs advance (all checkpointed)."""

    config: RunConfig
    record: dict[str, Any]  # config.json: the settings and what was learnt from the data
    runtime: Runtime
    device: torch.device
    amp_dtype: torch.dtype | None
    data: Data
    net: nn.Module  # the network itself: optimizer, checkpoints and validation (under torchrun) use it
    forward: nn.Module  # what a training step calls: ``net``, in DDP under torchrun, compiled on request
    evaluator: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    plateau: Plateau
    guard: StepGuard
    streams: RankStreams
    train_loader: Loader
    val_loader: Loader
    files: RunFiles
    log: Callable[[str], None]
    steps_per_epoch: int
    total_steps: int
    num_epochs: int
    epoch: int = 0  # epochs done
    step: int = 0  # steps done in the current epoch (a run resumed mid-epoch starts there)
    sums: torch.Tensor | None = None  # this epoch's loss x n and top-1 hits, on the device
    seen: int = 0  # this epoch's training images (a host count: reading it never waits for the device)
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"val_top1": -1.0, "val_top5": 0.0, "epoch": 0})
    train_seconds: float = 0.0
    images_seen: int = 0
    last_good: str = "no checkpoint had been written yet"
    # a model that skips dropped layers (``skips_layers``) keeps zero gradients for them, so momentum and weight
    # decay still apply to every parameter each step, as they did when dropped work was computed and multiplied by 0
    zero_grads_to_none: bool = True

    @property
    def recipe(self) -> Recipe:
        return self.config.recipe


@dataclass
class RunResult:
    out: Path
    model: nn.Module
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


def save(run: Run, epoch: int, step_in_epoch: int, partial: list[float] | None = None) -> None:
    """The ``last`` weights and training state (rank 0; the state it replaces becomes ``previous.pt``)."""
    if not run.config.checkpoints or not run.runtime.main:
        return
    run.files.save_weights("last", run.net, run.record, epoch=epoch, metrics=run.history[-1] if run.history else {})
    ckpt.save_state(run.files.out / "last.pt", {
        "format": ckpt.FORMAT, "format_version": ckpt.FORMAT_VERSION, "config": run.record,
        "model": run.net.state_dict(), "optimizer": run.optimizer.state_dict(), "plateau": run.plateau.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "epoch": epoch, "step_in_epoch": step_in_epoch,
        "partial_sums": torch.tensor(partial[:2] if partial else [0.0, 0.0], dtype=run.sums.dtype),
        "partial_count": int(partial[2]) if partial else 0,
        "history": run.history, "best": run.best, "rng": rng_state(run.device),
    })
    run.last_good = _checkpoint_name(run.files.out / "last.pt", epoch, step_in_epoch)


def restore(run: Run, state: dict[str, Any], path: Path) -> None:
    """Continue ``run`` where ``state`` (read from ``path``) stopped: weights, optimizer, schedule, counters, RNG."""
    load_weights(run.net, state["model"], name=run.config.model)  # another architecture or class count: named
    run.optimizer.load_state_dict(state["optimizer"])
    run.plateau.load_state_dict(state["plateau"])
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    run.history, run.best = [dict(row) for row in state["history"]], dict(state["best"])
    run.epoch, run.step = state["epoch"], state["step_in_epoch"]
    if run.runtime.main:  # the partial sums are the whole job's: counted once, on rank 0
        run.sums, run.seen = state["partial_sums"].to(run.device, run.sums.dtype), state["partial_count"]
    run.train_seconds = sum(row["train_seconds"] for row in run.history)
    run.images_seen = sum(row["train_images"] for row in run.history)
    set_rng_state(state["rng"], run.device)  # last: nothing after this may draw random numbers before training
    run.last_good = _checkpoint_name(path, run.epoch, run.step)
    run.log(f"resuming {run.files.out} after epoch {run.epoch}" + (f", step {run.step}" if run.step else ""))


def _checkpoint_name(path: Path, epoch: int, step_in_epoch: int) -> str:
    where = f"after epoch {epoch}" + (f", step {step_in_epoch}" if step_in_epoch else "")
    return f"the last good checkpoint is {path} ({where})"


__all__ = ["Run", "RunResult", "restore", "save"]
