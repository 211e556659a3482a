"""The lab's bench: settings, data, and training runs that are ordinary cnnzoo run folders.

Every trained run of an experiment is made by :func:`cnnzoo.train` into ``OUT/<experiment>/<label>-seed<N>`` (the
label as a folder name): its config.json, metrics.jsonl, summary.json, checkpoints and report.html are those of any
``cnnzoo train`` run, so a run can be opened, evaluated or resumed on its own (a lab-sized variant records its
registered network and its spec changes; only small-filters' two FilterNets are lab modules that ``cnnzoo eval``
cannot rebuild by name). ``--resume`` continues each unfinished run from its checkpoint and reloads each finished one
(no step is trained twice); without it a folder that already holds a run is refused.

:class:`RunRecord` is what the lab reads back from a run: per-epoch errors (100 - top-1, in %), losses, seconds,
parameters, and the trained network when an experiment evaluates it further.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import Data, load_data
from ..device import default_channels_last, resolve_device
from ..errors import UserError
from ..training import train
from .figures import write_run_report

SCALES = ("smoke", "paper")
PAPER_DATA = "cifar10:PATH"  # what a paper-scale protocol names: --data must say where
PAPER_DATA_NEEDED = ("--scale paper trains on the papers' data set: pass --data cifar10:PATH (CIFAR-10 python "
                     "batches)")
# what a run folder holds once the trainer has started it (any of them: the folder is a run)
RUN_MARKERS = ("config.json", "metrics.jsonl", "summary.json", "last.pt")


@dataclass(frozen=True)
class LabSettings:
    """``cnnzoo lab``'s options. ``epochs`` shortens every trained run (tests, quick looks): the protocol's length
    otherwise. ``data`` replaces each trained experiment's data set (``--scale paper`` needs it)."""

    scale: str = "smoke"
    data: str | None = None
    device: str = "auto"
    seeds: int = 1
    out: Path = Path("lab")
    resume: bool = False
    epochs: int | None = None
    threads: int | None = None
    run_reports: bool = True  # each run's report.html (as `cnnzoo train` writes it)
    verbose: bool = False  # the trainer's epoch lines

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))  # a str from Python callers
        if self.scale not in SCALES:
            raise UserError(f"--scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        if self.seeds < 1:
            raise UserError(f"--seeds must be at least 1, got {self.seeds}")
        if self.epochs is not None and self.epochs < 1:
            raise UserError(f"--epochs must be at least 1, got {self.epochs}")

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "data": self.data, "device": self.device, "seeds": self.seeds,
                "out": str(self.out), "epochs": self.epochs, "threads": self.threads}


@dataclass
class RunRecord:
    """One finished run, as the lab reads it: errors in % (100 - top-1), per epoch and final."""

    label: str
    model: str
    seed: int
    path: Path
    params: int
    steps_per_epoch: int
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    net: nn.Module | None = field(default=None, repr=False)

    @property
    def final_train_error(self) -> float:
        return 100.0 - self.history[-1]["train_top1"]

    @property
    def final_val_error(self) -> float:
        return 100.0 - self.history[-1]["val_top1"]

    @property
    def final_train_loss(self) -> float:
        return self.history[-1]["train_loss"]

    @property
    def best_val_error(self) -> float:
        return 100.0 - max(row["val_top1"] for row in self.history)

    @property
    def seconds_per_epoch(self) -> float:
        """Training seconds per epoch (validation excluded), over the run's epochs."""
        return sum(row["train_seconds"] for row in self.history) / len(self.history)

    def curve(self) -> list[dict[str, float]]:
        """Per epoch: iterations done, training error/loss, validation error/loss, cumulated training seconds."""
        points, seconds = [], 0.0
        for row in self.history:
            seconds += row["train_seconds"]
            points.append({"epoch": row["epoch"], "iteration": row["epoch"] * self.steps_per_epoch,
                           "train_error": 100.0 - row["train_top1"], "train_loss": row["train_loss"],
                           "val_error": 100.0 - row["val_top1"], "val_loss": row["val_loss"], "seconds": seconds})
        return points

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "model": self.model, "seed": self.seed, "path": str(self.path),
                "params": self.params, "epochs": len(self.history), "steps_per_epoch": self.steps_per_epoch,
                "final_train_error": self.final_train_error, "final_train_loss": self.final_train_loss,
                "final_val_error": self.final_val_error, "best_val_error": self.best_val_error,
                "seconds_per_epoch": self.seconds_per_epoch, "curve": self.curve()}


@dataclass(frozen=True)
class Protocol:
    """How one trained experiment trains at one scale: data, input side, recipe and length (epochs; ``None``: the
    recipe's own, i.e. the paper's), extra recipe fields."""

    data: str
    image_size: int
    recipe: str | None  # None: each model's own paper recipe
    epochs: int | None
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        recipe = "each model's own paper recipe" if self.recipe is None else f"recipe '{self.recipe}'"
        length = "at the recipe's full length" if self.epochs is None else f"for {self.epochs} epochs"
        extra = "" if not self.overrides else " with " + ", ".join(f"{k}={v}" for k, v in self.overrides.items())
        return f"{self.data} at {self.image_size}x{self.image_size} px, {recipe}{extra}, {length}"


class Lab:
    """One ``cnnzoo lab`` session: its settings, the data sets it loaded, and the runs it trained."""

    def __init__(self, settings: LabSettings, *, log: Callable[[str], None] | None = print) -> None:
        self.settings = settings
        self.log = log or (lambda line: None)
        self._data: dict[tuple[str, int], Data] = {}

    @property
    def paper(self) -> bool:
        return self.settings.scale == "paper"

    def seeds(self, at_least: int = 1) -> list[int]:
        return list(range(max(self.settings.seeds, at_least)))

    def protocol(self, smoke: Protocol, paper: Protocol) -> Protocol:
        """The protocol at this session's scale, with ``--data`` and ``--epochs`` applied."""
        chosen = paper if self.paper else smoke
        data = self.settings.data or chosen.data
        if data == PAPER_DATA:
            raise UserError(PAPER_DATA_NEEDED)
        epochs = self.settings.epochs if self.settings.epochs is not None else chosen.epochs
        return Protocol(data, chosen.image_size, chosen.recipe, epochs, chosen.overrides)

    def data(self, spec: str, image_size: int) -> Data:
        """A data set by ``--data`` spec, loaded once per session and side."""
        key = (spec, image_size)
        if key not in self._data:
            self._data[key] = load_data(spec, image_size=image_size)
        return self._data[key]

    def train(self, experiment: str, label: str, model: str | Callable[[int], nn.Module], protocol: Protocol, *,
              seed: int = 0, recipe: str | None = None, model_kwargs: Mapping[str, Any] | None = None,
              overrides: Mapping[str, Any] | None = None) -> RunRecord:
        """Train (or resume, or reload) one run into ``OUT/<experiment>/<label>-seed<seed>``.

        ``model``: a registered name, or a builder ``f(num_classes) -> nn.Module`` for a lab-sized variant
        (recorded under ``label``). ``recipe``: this model's recipe where the protocol names none."""
        path = self.settings.out / experiment / f"{slug(label)}-seed{seed}"
        data = self.data(protocol.data, protocol.image_size)
        if not isinstance(model, str):
            torch.manual_seed(seed)  # a module is initialised here, before the trainer seeds: same seed, same weights
        net = None if isinstance(model, str) else model(data.num_classes)
        name = model if isinstance(model, str) else None
        started = [m for m in RUN_MARKERS if (path / m).exists()]
        common = dict(data=data, device=self.settings.device, threads=self.settings.threads,
                      progress=None if self.settings.verbose else False, log="print" if self.settings.verbose else None)
        t0 = time.perf_counter()
        if started and not self.settings.resume:
            raise UserError(f"{path} holds an earlier run; continue the lab with --resume, or choose another --out")
        if (path / "last.pt").exists():
            result = train(net if net is not None else name, resume=path, epochs=protocol.epochs, **common)
        else:
            result = train(
                net if net is not None else name, model_name=label if net is not None else None,
                recipe=protocol.recipe or recipe, overrides={**protocol.overrides, **(overrides or {})},
                epochs=protocol.epochs, image_size=protocol.image_size, seed=seed, out=path, overwrite=bool(started),
                model_kwargs=model_kwargs, **common,
                # the device's default layout, never the run-start probe: the probe's choice depends on timing, and a
                # layout changes the last bits of every step, so one seed would not always give one verdict
                channels_last=default_channels_last(resolve_device(self.settings.device)),
            )
        record = RunRecord(label=label, model=name or label, seed=seed, path=path,
                           params=sum(p.numel() for p in result.model.parameters()),
                           steps_per_epoch=int(json.loads((path / "config.json").read_text())["steps_per_epoch"]),
                           history=result.history, summary=result.summary, net=result.model)
        if self.settings.run_reports:
            write_run_report(path, self.log)
        self.log(f"  {experiment}/{path.name}: {len(record.history)} epochs, {record.params:,} params, "
                 f"train error {record.final_train_error:.2f}%, val error {record.final_val_error:.2f}%, "
                 f"{record.seconds_per_epoch:.2f} s/epoch ({time.perf_counter() - t0:.1f} s)")
        return record


def slug(label: str) -> str:
    """A run label as a folder name: ``DenseNet-BC-28 (k=12)`` -> ``DenseNet-BC-28-k12``."""
    return re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9.-]+", "-", label.replace("=", ""))).strip("-")


def machine_load() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
