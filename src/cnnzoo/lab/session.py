"""``run_lab(names, settings)``: run experiments one after the other, each timed, and keep OUT/lab.json and
OUT/lab.html up to date after every one (a lab stopped half-way shows what it measured).

lab.json holds one entry per experiment (claim, source, rule, protocol, checks, verdict line, per-run numbers,
seconds, load average before and after); running experiments one by one into the same OUT adds to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import files
from ..errors import UserError
from ..version import __version__
from .experiment import Experiment
from .experiments import EXPERIMENTS
from .page import write_page
from .runner import PAPER_DATA_NEEDED, Lab, LabSettings, machine_load

LAB_JSON, LAB_HTML = "lab.json", "lab.html"


def read_lab(out: Path) -> dict[str, Any]:
    """OUT/lab.json, or an empty lab."""
    path = Path(out) / LAB_JSON
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("experiments"), dict):
                return data
        except (OSError, ValueError):
            pass
    return {"experiments": {}}


def _write(out: Path, lab: dict[str, Any]) -> None:
    order = {e.name: i for i, e in enumerate(EXPERIMENTS)}
    lab["experiments"] = dict(sorted(lab["experiments"].items(), key=lambda kv: order.get(kv[0], len(order))))
    lab.update(cnnzoo_version=__version__, torch_version=torch.__version__,
               updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    out.mkdir(parents=True, exist_ok=True)
    files.write_json(out / LAB_JSON, lab)
    write_page(lab, out / LAB_HTML)


def run_lab(experiments: Sequence[Experiment], settings: LabSettings,
            log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Run ``experiments`` in order; returns lab.json's content. Each verdict line is logged as it is reached."""
    if settings.scale == "paper" and settings.data is None and any(e.trained for e in experiments):
        raise UserError(PAPER_DATA_NEEDED)
    say = log or (lambda line: None)
    bench = Lab(settings, log=say)
    out = Path(settings.out)
    lab = read_lab(out)
    for experiment in experiments:
        say(f"== {experiment.name}: {experiment.title}")
        load_before, t0 = machine_load(), time.perf_counter()
        outcome = experiment.run(bench, experiment.name)
        seconds = time.perf_counter() - t0
        entry = experiment.record(outcome, scale=settings.scale, seconds=seconds, load=[load_before, machine_load()])
        entry["settings"] = settings.to_dict()
        lab["experiments"][experiment.name] = entry
        _write(out, lab)
        say(f"{entry['verdict']}  ({seconds:.1f} s)")
    return lab
