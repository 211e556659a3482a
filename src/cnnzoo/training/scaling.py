"""A recipe's schedule fitted to the run's length: ``fit_schedule(recipe, total_steps=..., steps_per_epoch=...)``.

A user who asks for the paper's recipe in 8 epochs means the paper's *shape* in 8 epochs: He et al.'s lr drops at
32k and 48k of 64k iterations become drops at 50% and 75% of the run. Every length of the recipe scales by
``factor = run steps / recipe steps``: milestones (in iterations or epochs), the ``step`` schedule's period,
warm-up, plateau patience, the ``exp`` schedule's per-epoch decay. Lengths in epochs are rounded to whole epochs and
never drop below one. ``milestones_fraction`` and cosine/poly already follow the run. A field the user set
explicitly (``--set milestones_epochs=...``) is taken as written. ``Schedule.line`` states the schedule used, in
epochs; ``Schedule.warnings`` what of it cannot happen in this run (a milestone at or past its end).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .recipe_table import RECIPES
from .recipes import Recipe
from .schedules import milestone_steps, warmup_steps

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
    """The recipe as written before the user's overrides: the table's row when ``recipe`` is it plus them."""
    table = RECIPES.get(recipe.name)
    if table is None:
        return recipe
    restored = recipe.replace(**{f: getattr(table, f) for f in explicit if f != "name"})
    return table if restored == table else recipe


def fit_schedule(recipe: Recipe, *, total_steps: int, steps_per_epoch: int, explicit: Iterable[str] = ()) -> Schedule:
    explicit = set(explicit)
    base = base_recipe(recipe, explicit)
    base_steps = base.iterations or (base.epochs or 1) * steps_per_epoch
    factor = total_steps / base_steps
    changes: dict[str, Any] = {}
    if abs(factor - 1) > 1e-9:
        for name in LENGTH_FIELDS:
            if name in explicit or recipe.schedule not in _USED_BY.get(name, (recipe.schedule,)):
                continue
            value = getattr(recipe, name)
            new = _scaled(name, value, factor, recipe)
            if new != value:
                changes[name] = new
    fitted = recipe.replace(**changes) if changes else recipe
    line = "schedule: " + describe(fitted, steps_per_epoch, total_steps)
    if changes:
        line += f" ({_original(base)}, scaled x{factor:.2g})"
    return Schedule(fitted, factor, line, _cannot_happen(fitted, steps_per_epoch, total_steps),
                    {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()})


def _scaled(name: str, value: Any, factor: float, recipe: Recipe) -> Any:
    if name == "milestones_iterations":
        return tuple(max(1, round(m * factor)) for m in value)
    if name == "milestones_epochs":
        return tuple(max(1.0, round(m * factor, 2)) for m in value)
    if name == "warmup_iterations":
        return max(1, round(value * factor)) if value else 0
    if name in ("step_epochs", "warmup_epochs"):
        return max(1.0, round(value * factor, 2)) if value else value
    if name == "plateau_patience_epochs":
        return max(1, round(value * factor))
    if name == "gamma" and recipe.schedule == "exp":  # per-epoch decay: the same total decay over the run
        return value ** (1 / factor)
    return value


def describe(recipe: Recipe, steps_per_epoch: int, total_steps: int) -> str:
    """The schedule in epochs of this run, e.g. ``lr 0.1, x0.1 at epochs 4 and 6 of 8``."""
    n = _epochs(total_steps, steps_per_epoch)
    text = f"lr {recipe.lr:g}, "
    match recipe.schedule:
        case "multistep":
            at = [_epochs(s, steps_per_epoch) for s in milestone_steps(recipe, steps_per_epoch, total_steps)]
            word = "epoch" if len(at) == 1 else "epochs"
            text += f"x{recipe.gamma:g} at {word} {_and(at)} of {n}" if at else f"constant for {n} epochs"
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
        text += f", after a {recipe.warmup} warm-up{start} of {_epochs(warm, steps_per_epoch)} epoch(s)"
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


__all__ = ["LENGTH_FIELDS", "Schedule", "base_recipe", "describe", "fit_schedule"]
