"""Checks a run makes before it allocates anything, and the one line a re-planned resume prints.

- ``check_memory``: an input side whose training memory (the analyzer's estimate: parameters, gradients, optimizer
  state, saved activations and the input batch) exceeds what the device has is refused, instead of trying to
  allocate it;
- ``replanned``: ``--resume DIR --epochs N`` with another length re-plans the schedule (a cosine or poly schedule
  then gives another lr at the resume point); the change is printed, never silent.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from ..analysis import analyze
from ..errors import UserError
from ..registry import model_info
from .recipes import Recipe
from .schedules import lr_at


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


def check_memory(model: str, size: int, batch: int, device: torch.device) -> None:
    """Refuse an input side whose training memory, as the analyzer predicts it, exceeds the device's memory.

    Only sides above twice the model's own are checked (where such surprises happen): the analyzer runs at the
    model's side and the per-image bytes (saved activations, input) are scaled by the area ratio."""
    native = model_info(model).input_size
    if size <= 2 * native[1]:
        return
    report = analyze(model, native, batch_size=1).totals
    fixed = report.param_bytes + report.buffer_bytes + report.grad_bytes + report.optimizer_bytes
    per_image = (report.saved_activation_bytes or report.activation_bytes) + report.input_bytes
    need = fixed + per_image * batch * (size / native[1]) ** 2
    have = device_memory_bytes(device)
    if have and need > have:
        raise UserError(f"--image-size {size}: training {model} at {size}x{size}, batch {batch}, needs about "
                        f"{need / 2**30:,.0f} GiB (the analyzer's estimate), more than the {have / 2**30:,.1f} GiB "
                        f"{device} has; use a smaller --image-size or --batch-size")


def device_memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
