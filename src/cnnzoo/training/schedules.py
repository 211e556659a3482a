"""The optimizer and its learning rate: SGD from a recipe, the schedules as pure functions of (step, recipe), and
reduce-on-plateau as a small state machine.

``step`` counts optimizer steps from 0. Epoch-based numbers are converted with ``steps_per_epoch``; fractions of
the run with ``total_steps``. Reduce-on-plateau is the lecture's "divide by 10 when val accuracy plateaus": its
state (best top-1, epochs without improvement, reductions so far) lives in :class:`Plateau` and is checkpointed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .recipes import Recipe


def make_sgd(model: nn.Module, recipe: Recipe, device: torch.device,
             head: list[nn.Parameter] | None = None) -> torch.optim.Optimizer:
    """SGD over the trainable parameters; with ``head`` and ``recipe.head_lr_mult != 1`` two groups, the head's
    carrying ``lr_mult`` (the trainer sets each group's lr to the schedule's lr x its ``lr_mult``)."""
    params: list | list[dict] = [p for p in model.parameters() if p.requires_grad]
    if head and recipe.head_lr_mult != 1:
        ids = {id(p) for p in head}
        params = [{"params": [p for p in params if id(p) not in ids], "lr_mult": 1.0},
                  {"params": [p for p in params if id(p) in ids], "lr_mult": recipe.head_lr_mult}]
        params = [g for g in params if g["params"]]
    kwargs = dict(lr=recipe.lr, momentum=recipe.momentum, dampening=recipe.dampening, nesterov=recipe.nesterov,
                  weight_decay=recipe.weight_decay)
    try:  # one fused kernel for all parameters where this torch supports it on this device
        return torch.optim.SGD(params, **kwargs, fused=True)
    except (RuntimeError, TypeError, ValueError):
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
