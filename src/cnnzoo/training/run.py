"""``Run``: one training run in progress (what ``prepare`` builds, the counters each epoch advances), and
``RunResult``: what a finished run returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Data
from ..data.loaders import Loader
from .config import RunConfig
from .guard import StepGuard
from .recipes import Recipe
from .run_files import RunFiles
from .runtime import RankStreams, Runtime
from .schedules import Plateau


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
