"""``Run``: one training run in progress (what ``prepare`` builds, the counters each epoch advances), its saved state,
and ``RunResult``: what a finished run returns.

The training state in ``last.pt``: ``save`` writes it (with the ``last`` weights), ``restore`` reads it back. It holds
tensors and plain data only (``torch.load(weights_only=True)`` reads it): weights, optimizer, plateau and scaler
state, epoch and step, the epoch's partial sums, the history, the best epoch, and the default random streams, so a
resumed run continues bit-identically on the CPU.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import checkpoint as ckpt
from ..data import Data
from ..data.loaders import Loader
from ..errors import UserError
from ..weights import load_weights
from .config import RunConfig, read_run_config
from .distributed import RankStreams, Runtime, rng_state, set_rng_state
from .recipes import Recipe
from .run_files import RunFiles, RunLock
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
    lock: RunLock | None = None  # the run directory, held for the run's life (rank 0; released by run_training)

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


def resume_point(resume: Path) -> tuple[Path | None, dict[str, Any] | None, dict[str, Any]]:
    """Where ``--resume`` continues: (the checkpoint, its state, the run's record: the state's config, or the run's
    config.json when it has no checkpoint).

    A state that is not a whole, consistent training state (a key missing, an epoch or step out of place, a garbled
    history) is refused in one line, or, when it is ``last.pt``, replaced by ``previous.pt`` if that one is whole (a
    warning says so), as for a damaged file. A run killed before its first checkpoint (no ``last.pt`` nor
    ``previous.pt``: nothing was trained that was kept) starts over from its config.json: (None, None, config)."""
    run_dir = resume.parent if resume.is_file() else resume
    if resume.is_dir() and not any((resume / name).exists() for name in ("last.pt", "previous.pt")):
        recorded = read_run_config(run_dir)
        if not recorded.get("checkpoints", True):
            raise ckpt.CheckpointError(f"--resume {run_dir}: the run writes no checkpoints (--no-checkpoints): nothing "
                                       f"to resume; start it again with --out {run_dir} --overwrite")
        return None, None, recorded
    path, state = ckpt.find_resume_state(resume)
    problem = state_problem(state)
    previous = path.with_name("previous.pt")
    if problem and path.name == "last.pt" and previous.is_file():
        try:
            earlier = ckpt.load_state(previous)
        except ckpt.CheckpointError:
            earlier = None
        if earlier is not None and state_problem(earlier) is None:
            warnings.warn(f"{path}: not a usable training state ({problem}); resuming from {previous} instead",
                          stacklevel=2)
            return previous, earlier, earlier["config"]
    if problem:
        raise ckpt.CheckpointError(f"--resume {run_dir}: {path} is not a usable training state ({problem})")
    return path, state, state["config"]


def state_problem(state: Mapping[str, Any]) -> str | None:
    """What makes ``state`` (a ``last.pt`` read back) unusable for a resume; None when it is whole and consistent."""
    kinds = {"config": Mapping, "model": Mapping, "optimizer": Mapping, "plateau": Mapping, "epoch": int,
             "step_in_epoch": int, "partial_sums": torch.Tensor, "partial_count": int, "history": list,
             "best": Mapping, "rng": Mapping}
    for key, kind in kinds.items():
        if key not in state:
            return f"no {key!r}"
        if not isinstance(state[key], kind) or (kind is int and isinstance(state[key], bool)):
            return f"{key!r} is a {type(state[key]).__name__}"
    config, epoch, step = state["config"], state["epoch"], state["step_in_epoch"]
    spe, total = config.get("steps_per_epoch"), config.get("total_steps")
    if not all(isinstance(v, int) and v > 0 for v in (spe, total)) or not isinstance(config.get("classes"), list):
        return "its config has no steps_per_epoch, total_steps or classes"
    if epoch < 0 or not 0 <= step <= spe or epoch * spe + step > total:  # (step spe: stopped after the epoch's last)
        return f"epoch {epoch}, step {step}: not a point of a run of {total:,} steps, {spe:,} per epoch"
    history = state["history"]
    if len(history) != epoch:
        return f"{len(history)} epochs of history for epoch {epoch}"
    numbers = ("train_seconds", "train_images", "val_top1")
    for i, row in enumerate(history):
        if not isinstance(row, Mapping) or row.get("epoch") != i + 1 or not all(
                isinstance(row.get(k), (int, float)) and not isinstance(row.get(k), bool) for k in numbers):
            return f"history row {i + 1} is garbled"
    if not all(isinstance(state["best"].get(k), (int, float)) for k in ("val_top1", "val_top5", "epoch")):
        return "'best' is garbled"
    torch_rng = state["rng"].get("torch")
    if not isinstance(torch_rng, torch.Tensor) or torch_rng.dtype != torch.uint8:
        return "'rng' has no torch generator state"
    if state["partial_sums"].numel() != 2 or state["partial_count"] < 0:
        return "the epoch's partial sums are garbled"
    return None


def check_same_data(data: Data, recorded: Mapping[str, Any], run_dir: Path) -> None:
    """Refuse to resume on data that changed since the run started: its classes, the size of either split, or the
    normalisation computed from it (the resumed epochs would silently train on other images)."""
    then = (recorded.get("classes"), recorded.get("train_images"), recorded.get("val_images"))
    now = (list(data.classes), len(data.train), len(data.val))
    what = None
    if then[0] is not None and now[0] != then[0]:
        what = f"its classes changed: {len(now[0])} now, {len(then[0])} then"
    elif then[1:] != (None, None) and now[1:] != then[1:]:
        what = f"{now[1]:,} training / {now[2]:,} validation images now, {then[1]:,} / {then[2]:,} then"
    elif recorded.get("mean") is not None and not all(
            math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
            for a, b in zip((*data.mean, *data.std), (*recorded["mean"], *recorded["std"]))):
        what = "the same number of images, other pixels (its mean and std changed)"
    if what is not None:
        raise UserError(f"--resume {run_dir}: the data changed since the run started ({what}); resuming would "
                        f"train the rest of the run on other data: start a new run (--out NEW, or --overwrite)")


def _checkpoint_name(path: Path, epoch: int, step_in_epoch: int) -> str:
    where = f"after epoch {epoch}" + (f", step {step_in_epoch}" if step_in_epoch else "")
    return f"the last good checkpoint is {path} ({where})"


__all__ = ["Run", "RunResult", "check_same_data", "restore", "resume_point", "save", "state_problem"]
