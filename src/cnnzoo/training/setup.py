"""What the loop needs before it starts: device, precision, optimizer, model identity, resume settings, signals."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .recipes import Recipe


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM arrived: the state was checkpointed in ``out``; ``--resume out`` continues."""

    def __init__(self, signum: int, out: Path) -> None:
        super().__init__(f"{signal.Signals(signum).name}: checkpoint saved; resume with --resume {out}")
        self.signum, self.out = signum, out

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # 130 for SIGINT, 143 for SIGTERM


class StopFlag:
    """SIGINT/SIGTERM set a flag that the loop checks after every step; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    return device


def amp_dtype_for(amp: str | None, device: torch.device) -> torch.dtype | None:
    amp = ("bf16" if device.type == "cuda" else "off") if amp is None else amp
    if amp not in ("off", "bf16", "fp16"):
        raise UserError(f"--amp must be off, bf16 or fp16, got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs a CUDA device (use --amp bf16 on CPU)")
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def make_sgd(model: nn.Module, recipe: Recipe, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    kwargs = dict(lr=recipe.lr, momentum=recipe.momentum, dampening=recipe.dampening, nesterov=recipe.nesterov,
                  weight_decay=recipe.weight_decay)
    try:  # one fused kernel for all parameters where this torch supports it on this device
        return torch.optim.SGD(params, **kwargs, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.SGD(params, **kwargs, foreach=device.type != "cpu")


def print_line(line: str) -> None:
    print(line, flush=True)  # flushed: a pipe (a log file, a parent process) sees every epoch as it ends


def model_identity(model: str | nn.Module, model_name: str | None) -> tuple[str, Any]:
    from ..registry import model_info

    if isinstance(model, str):
        return model, model_info(model)
    return model_name or type(model).__name__, None


def first_conv_channels(model: nn.Module) -> int:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3


def check_image_size(image_size: int | None, info: Any) -> int:
    if info is None:
        if image_size is None:
            raise UserError("training a module needs image_size= (the side of its square input)")
        return image_size
    size = image_size or info.input_size[1]
    if size < info.test_size:
        raise UserError(f"--image-size {size} is too small for {info.name}: the smallest side it accepts is "
                        f"{info.test_size}")
    return size


def default_workers(workers: int | None) -> int:
    if workers is not None:
        return max(0, workers)
    return min(8, max(0, (os.cpu_count() or 1) - 1))


def resume_settings(state: dict[str, Any], path: Path, *, changes_recipe: bool, **given: Any) -> dict[str, Any]:
    """The run's own settings from its checkpoint; an explicitly different model, data, recipe, size or seed is
    refused (the run would silently become another run), and so are recipe overrides."""
    config, run = state["config"], path.parent
    if changes_recipe:
        raise UserError(f"--resume {run}: the recipe cannot change on resume (see {run / 'config.json'})")
    saved = {"model": config["model"], "data": config["data"], "recipe": config["recipe"]["name"],
             "image_size": config["image_size"], "seed": config["seed"]}
    for key, value in given.items():
        if isinstance(value, (str, int)) and value != saved[key]:  # None, a module, a Data or a Recipe: not compared
            raise UserError(f"--resume {run}: the run used {key} {saved[key]!r}, not {value!r}")
    return {**saved, "recipe": Recipe.from_dict(config["recipe"]), "val_fraction": config["val_fraction"],
            "model_kwargs": config["model_kwargs"], "out": run}
