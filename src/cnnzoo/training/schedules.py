"""The optimizer and its learning rate: SGD from a recipe, the schedules as pure functions of (step, recipe),
reduce-on-plateau as a small state machine, and the recipe's schedule fitted to the run's length.

``step`` counts optimizer steps from 0. Epoch-based numbers are converted with ``steps_per_epoch``; fractions of
the run with ``total_steps``. Reduce-on-plateau is the lecture's "divide by 10 when val accuracy plateaus": its
state (best top-1, epochs without improvement, reductions so far) lives in :class:`Plateau` and is checkpointed.

Fitting, ``fit_schedule(recipe, total_steps=..., steps_per_epoch=...)``: a user who asks for the paper's recipe in 8
epochs means the paper's *shape* in 8 epochs: He et al.'s lr drops at 32k and 48k of 64k iterations become drops at
50% and 75% of the run. Every length of the recipe scales by ``factor = run steps / recipe steps``: milestones (in
iterations or epochs), the ``step`` schedule's period, warm-up, plateau patience, the ``exp`` schedule's per-epoch
decay. A scaled length is never under one epoch, and is a whole number of epochs where that moves it by at most 2% of
the run (``WHOLE_EPOCH_SHIFT``: always in runs of 25 epochs or more); in a shorter run a length that would move more
keeps the paper's shape at its exact step (or hundredth of an epoch). ``milestones_fraction`` and cosine/poly already follow the run. A field the user set explicitly
(``--set milestones_epochs=...``) is taken as written, and replaces its group (``recipes.GROUPS``: the recipe's
milestones in iterations are gone). ``Schedule.line`` states the schedule used, in epochs, and in steps where a drop
or the warm-up's end falls inside an epoch; ``Schedule.warnings`` what of it cannot happen in this run (a milestone
at or past its end). ``--resume DIR --epochs N`` with another length re-plans the schedule (a
cosine or poly schedule then gives another lr at the resume point): ``replanned`` is the line that says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .recipes import RECIPES, Recipe, grouped


def make_sgd(model: nn.Module, recipe: Recipe, device: torch.device,
             head: list[nn.Parameter] | None = None, *, scaled: bool = False) -> torch.optim.Optimizer:
    """SGD over the trainable parameters; with ``head`` and ``recipe.head_lr_mult != 1`` two groups, the head's
    carrying ``lr_mult`` (the trainer sets each group's lr to the schedule's lr x its ``lr_mult``).

    ``scaled``: the steps go through a ``GradScaler`` (``--amp fp16``). The fused kernel is then not used: the scaler
    hands a fused optimizer ``found_inf`` instead of skipping its step, and on a skipped first step the kernel
    returns before writing the momentum buffers it allocated uninitialised, which the next step reads (NaN weights
    after the first overflow, common at the initial scale 2^16). The multi-tensor ``foreach`` path is skipped whole
    by the scaler."""
    params: list | list[dict] = [p for p in model.parameters() if p.requires_grad]
    if head and recipe.head_lr_mult != 1:
        ids = {id(p) for p in head}
        params = [{"params": [p for p in params if id(p) not in ids], "lr_mult": 1.0},
                  {"params": [p for p in params if id(p) in ids], "lr_mult": recipe.head_lr_mult}]
        params = [g for g in params if g["params"]]
    kwargs = dict(lr=recipe.lr, momentum=recipe.momentum, dampening=recipe.dampening, nesterov=recipe.nesterov,
                  weight_decay=recipe.weight_decay)
    if not scaled:
        try:  # one fused kernel for all parameters where this torch supports it on this device
            return torch.optim.SGD(params, **kwargs, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return torch.optim.SGD(params, **kwargs, foreach=device.type != "cpu")


def warmup_steps(recipe: Recipe, steps_per_epoch: int) -> int:
    return recipe.warmup_iterations + round(recipe.warmup_epochs * steps_per_epoch)


def milestone_steps(recipe: Recipe, steps_per_epoch: int, total_steps: int) -> list[int]:
    """Every multistep milestone in optimizer steps, sorted."""
    steps = list(recipe.milestones_iterations)
    steps += [round(e * steps_per_epoch) for e in recipe.milestones_epochs]
    steps += [round(f * total_steps) for f in recipe.milestones_fraction]
    return sorted(steps)


def scheduled_lr(step: int, recipe: Recipe, *, steps_per_epoch: int, total_steps: int) -> float:
    """The schedule's learning rate before warm-up and plateau reductions."""
    lr = recipe.lr
    match recipe.schedule:
        case "constant" | "plateau":
            return lr
        case "multistep":
            passed = sum(step >= m for m in milestone_steps(recipe, steps_per_epoch, total_steps))
            return lr * recipe.gamma**passed
        case "step":  # Szegedy et al.: x0.96 every 8 epochs; Xie et al.: x0.1 every 30 epochs
            return lr * recipe.gamma ** (step // max(1, round(recipe.step_epochs * steps_per_epoch)))
        case "exp":  # smooth per-epoch exponential decay
            return lr * recipe.gamma ** (step / steps_per_epoch)
        case "cosine" | "poly":
            start = warmup_steps(recipe, steps_per_epoch)
            t = min(1.0, max(0.0, (step - start) / max(1, total_steps - start)))
            if recipe.schedule == "cosine":
                return lr * 0.5 * (1.0 + math.cos(math.pi * t))
            return lr * (1.0 - t) ** recipe.power  # Iandola et al.: Caffe "poly", power 1 = linear to 0
    raise ValueError(f"unknown schedule {recipe.schedule!r}")


def lr_at(
    step: int, recipe: Recipe, *, steps_per_epoch: int, total_steps: int, plateau_factor: float = 1.0
) -> float:
    """The learning rate of optimizer step ``step``: schedule x plateau reductions, warm-up first."""
    lr = scheduled_lr(step, recipe, steps_per_epoch=steps_per_epoch, total_steps=total_steps) * plateau_factor
    warm = warmup_steps(recipe, steps_per_epoch)
    if step < warm:
        if recipe.warmup == "constant":  # He et al. 2016 §4.2 (ResNet-110): lr 0.01 until training starts to go
            return recipe.warmup_start_lr
        return recipe.warmup_start_lr + (lr - recipe.warmup_start_lr) * (step + 1) / warm
    return lr


@dataclass
class Plateau:
    """Multiply the lr by ``factor`` when val top-1 has not improved by ``threshold`` for ``patience`` epochs."""

    factor: float = 0.1
    patience: int = 5
    threshold: float = 0.1
    max_reductions: int | None = None
    best: float = -math.inf
    bad_epochs: int = 0
    reductions: int = 0

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> Plateau:
        return cls(
            factor=recipe.gamma,
            patience=recipe.plateau_patience_epochs,
            threshold=recipe.plateau_threshold,
            max_reductions=recipe.plateau_max_reductions,
        )

    @property
    def lr_factor(self) -> float:
        return self.factor**self.reductions

    def step(self, val_top1: float) -> bool:
        """Record one epoch's val top-1 (in %); True when the lr was just reduced."""
        if val_top1 > self.best + self.threshold:
            self.best, self.bad_epochs = val_top1, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs < self.patience:
            return False
        if self.max_reductions is not None and self.reductions >= self.max_reductions:
            return False
        self.reductions += 1
        self.bad_epochs = 0
        return True

    def state_dict(self) -> dict[str, float | int | None]:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


# --- the schedule fitted to the run ----------------------------------------------------------------------------------

LENGTH_FIELDS = ("milestones_iterations", "milestones_epochs", "step_epochs", "warmup_iterations", "warmup_epochs",
                 "plateau_patience_epochs", "gamma")
_USED_BY = {"milestones_iterations": ("multistep",), "milestones_epochs": ("multistep",), "step_epochs": ("step",),
            "plateau_patience_epochs": ("plateau",), "gamma": ("exp",)}  # the rest: every schedule


@dataclass(frozen=True)
class Schedule:
    recipe: Recipe  # the scaled recipe the run uses
    factor: float  # run steps / recipe steps (1: the recipe's own length)
    line: str  # "schedule: lr 0.1, x0.1 at epochs 4 and 6 of 8 (...)"
    warnings: tuple[str, ...]
    scaled: dict[str, Any]  # the fields that changed, with their values in the run (for config.json)


def base_recipe(recipe: Recipe, explicit: Iterable[str]) -> Recipe:
    """The recipe as written before the user's overrides: the table's row when ``recipe`` is it plus them (a field
    set replaces its group, ``recipes.GROUPS``: the group is restored whole)."""
    table = RECIPES.get(recipe.name)
    if table is None:
        return recipe
    restored = recipe.replace(**{f: getattr(table, f) for f in grouped(explicit) if f != "name"})
    return table if restored == table else recipe


def fit_schedule(recipe: Recipe, *, total_steps: int, steps_per_epoch: int, explicit: Iterable[str] = ()) -> Schedule:
    explicit = grouped(explicit)
    base = base_recipe(recipe, explicit)
    base_steps = base.iterations or (base.epochs or 1) * steps_per_epoch
    factor = total_steps / base_steps
    changes: dict[str, Any] = {}
    if abs(factor - 1) > 1e-9:
        for name in LENGTH_FIELDS:
            if name in explicit or recipe.schedule not in _USED_BY.get(name, (recipe.schedule,)):
                continue
            value = getattr(recipe, name)
            new = _scaled(name, value, factor, recipe, steps_per_epoch, total_steps)
            if new != value:
                changes[name] = new
        changes = _whole_epochs(recipe, changes, steps_per_epoch, total_steps)
    fitted = recipe.replace(**changes) if changes else recipe
    line = "schedule: " + describe(fitted, steps_per_epoch, total_steps)
    if changes:
        line += f" ({_original(base)}, scaled x{factor:.2g})"
    return Schedule(fitted, factor, line, _cannot_happen(fitted, steps_per_epoch, total_steps),
                    {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()})


WHOLE_EPOCH_SHIFT = 0.02  # a scaled length moves to a whole epoch when that shifts it by at most 2% of the run


def _scaled(name: str, value: Any, factor: float, recipe: Recipe, steps_per_epoch: int, total_steps: int) -> Any:
    """A length of the recipe scaled by ``factor``, never under one epoch, in whole epochs where that moves it by at
    most ``WHOLE_EPOCH_SHIFT`` of the run (milestones: ``_whole_epochs``, all of them or none)."""
    if name == "milestones_iterations":
        return tuple(max(1, round(m * factor)) for m in value)
    if name == "milestones_epochs":
        return tuple(max(1.0, round(m * factor, 2)) for m in value)
    if name == "warmup_iterations":
        exact = max(steps_per_epoch, round(value * factor))
        whole = round(exact / steps_per_epoch) * steps_per_epoch
        return (whole if abs(whole - exact) <= WHOLE_EPOCH_SHIFT * total_steps else exact) if value else 0
    if name in ("step_epochs", "warmup_epochs"):
        exact = max(1.0, value * factor)
        whole = float(round(exact))
        return (whole if abs(whole - exact) * steps_per_epoch <= WHOLE_EPOCH_SHIFT * total_steps
                else round(exact, 2)) if value else value
    if name == "plateau_patience_epochs":
        return max(1, round(value * factor))
    if name == "gamma" and recipe.schedule == "exp":  # per-epoch decay: the same total decay over the run
        return value ** (1 / factor)
    return value


def _whole_epochs(recipe: Recipe, changes: dict[str, Any], steps_per_epoch: int, total_steps: int) -> dict[str, Any]:
    """``changes`` with the scaled milestones moved to the nearest whole epoch (never before the first) when none
    moves by more than ``WHOLE_EPOCH_SHIFT`` of the run, none merges with another and none reaches the run's end;
    else (a run of a few epochs) they stay at their exact step, and the schedule line names the steps."""
    whole = dict(changes)
    if "milestones_iterations" in changes:
        whole["milestones_iterations"] = tuple(max(1, round(m / steps_per_epoch)) * steps_per_epoch
                                               for m in changes["milestones_iterations"])
    if "milestones_epochs" in changes:
        whole["milestones_epochs"] = tuple(max(1.0, float(round(m))) for m in changes["milestones_epochs"])
    if whole == changes:
        return changes
    exact = milestone_steps(recipe.replace(**changes), steps_per_epoch, total_steps)
    moved = milestone_steps(recipe.replace(**whole), steps_per_epoch, total_steps)
    near = all(abs(a - b) <= WHOLE_EPOCH_SHIFT * total_steps for a, b in zip(exact, moved))
    same_count = len(set(moved)) == len(set(exact))
    inside = sum(m < total_steps for m in moved) == sum(m < total_steps for m in exact)
    return whole if near and same_count and inside else changes


def describe(recipe: Recipe, steps_per_epoch: int, total_steps: int) -> str:
    """The schedule in epochs of this run, e.g. ``lr 0.1, x0.1 at epochs 4 and 6 of 8``."""
    n = _epochs(total_steps, steps_per_epoch)
    text = f"lr {recipe.lr:g}, "
    match recipe.schedule:
        case "multistep":
            steps = milestone_steps(recipe, steps_per_epoch, total_steps)
            at = [_epochs(s, steps_per_epoch) for s in steps]
            word = "epoch" if len(at) == 1 else "epochs"
            if not steps:
                text += f"constant for {n} epochs"
            elif all(s % steps_per_epoch == 0 for s in steps):
                text += f"x{recipe.gamma:g} at {word} {_and(at)} of {n}"
            else:  # a drop inside an epoch: the steps say exactly where
                text += (f"x{recipe.gamma:g} at step{'s' if len(steps) > 1 else ''} {_and([f'{s:,}' for s in steps])} "
                         f"of {total_steps:,} ({word} {_and(at)} of {n})")
        case "step":
            text += f"x{recipe.gamma:g} every {recipe.step_epochs:g} epochs of {n}"
        case "plateau":
            limit = f", at most {recipe.plateau_max_reductions} times" if recipe.plateau_max_reductions else ""
            text += (f"x{recipe.gamma:g} after {recipe.plateau_patience_epochs} epochs without val improvement"
                     f"{limit}, {n} epochs")
        case "cosine":
            text += f"cosine to 0 over {n} epochs"
        case "poly":
            text += f"poly (power {recipe.power:g}) to 0 over {n} epochs"
        case "exp":
            text += f"x{recipe.gamma:.4g} per epoch for {n} epochs"
        case _:
            text += f"constant for {n} epochs"
    warm = warmup_steps(recipe, steps_per_epoch)
    if warm:
        start = f" from {recipe.warmup_start_lr:g}" if recipe.warmup_start_lr else ""
        length = (f"{_epochs(warm, steps_per_epoch)} epoch(s)" if warm % steps_per_epoch == 0 else
                  f"{warm:,} steps ({_epochs(warm, steps_per_epoch)} epochs)")
        text += f", after a {recipe.warmup} warm-up{start} of {length}"
    return text


def _original(recipe: Recipe) -> str:
    """The recipe's own lengths, e.g. ``He et al.'s 32k/48k of 64k iterations``."""
    match = re.match(r"(.+?)\s(?:19|20)\d\d", recipe.source)
    who = f"{match.group(1)}'s" if match else f"recipe {recipe.name}'s"
    if recipe.iterations:
        length, unit = _k(recipe.iterations), "iterations"
    else:
        length, unit = f"{recipe.epochs}", "epochs"
    marks = [_k(m) for m in recipe.milestones_iterations] + [f"{m:g} ep" for m in recipe.milestones_epochs]
    if recipe.schedule == "multistep" and marks:
        return f"{who} {'/'.join(marks)} of {length} {unit}"
    return f"{who} {length} {unit}"


def _cannot_happen(recipe: Recipe, steps_per_epoch: int, total_steps: int) -> tuple[str, ...]:
    notes = []
    if recipe.schedule == "multistep":
        late = sorted({s for s in milestone_steps(recipe, steps_per_epoch, total_steps) if s >= total_steps})
        if late:
            notes.append(f"the lr drop at step {' and '.join(map(str, late))} cannot happen: the run ends at step "
                         f"{total_steps}")
    if recipe.schedule == "step" and round(recipe.step_epochs * steps_per_epoch) >= total_steps:
        notes.append(f"the step schedule's first drop (every {recipe.step_epochs:g} epochs) cannot happen in "
                     f"{_epochs(total_steps, steps_per_epoch)} epochs")
    if warmup_steps(recipe, steps_per_epoch) >= total_steps:
        notes.append("the warm-up lasts the whole run")
    if recipe.schedule == "plateau" and recipe.plateau_patience_epochs >= total_steps / steps_per_epoch:
        notes.append(f"a plateau of {recipe.plateau_patience_epochs} epochs cannot happen in "
                     f"{_epochs(total_steps, steps_per_epoch)} epochs: the lr stays {recipe.lr:g}")
    return tuple(notes)


def _epochs(steps: int, steps_per_epoch: int) -> str:
    return f"{round(steps / steps_per_epoch, 2):g}"


def _k(n: float) -> str:
    return f"{n / 1000:g}k" if n >= 1000 and n % 100 == 0 else f"{n:g}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def replanned(state: dict[str, Any], recipe: Recipe, steps_per_epoch: int, total_steps: int) -> str:
    """The one line a resume with another ``--epochs`` prints: the new length and what it does to the lr."""
    old_total = state["config"]["total_steps"]
    at = state["epoch"] * steps_per_epoch + state["step_in_epoch"]
    old_lr, new_lr = (lr_at(min(at, total - 1), recipe, steps_per_epoch=steps_per_epoch, total_steps=total)
                      for total in (old_total, total_steps))
    return (f"--epochs {math.ceil(total_steps / steps_per_epoch)}: the schedule is re-planned from "
            f"{math.ceil(old_total / steps_per_epoch)} to {math.ceil(total_steps / steps_per_epoch)} epochs "
            f"({old_total:,} -> {total_steps:,} steps); lr at the resume point (iteration {at + 1:,}) "
            f"{old_lr:.4g} -> {new_lr:.4g}")


__all__ = ["LENGTH_FIELDS", "WHOLE_EPOCH_SHIFT", "Plateau", "Schedule", "base_recipe", "describe", "fit_schedule",
           "lr_at", "make_sgd", "milestone_steps", "replanned", "scheduled_lr", "warmup_steps"]
