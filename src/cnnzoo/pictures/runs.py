"""Reading run folders (as the trainer writes them) and ensemble reports, defensively.

A crashed or still-running run may lack ``summary.json``, have a half-written last line in ``metrics.jsonl``, or no
metrics at all: :func:`read_run` keeps what parses and lists what is missing in ``RunData.problems``, so that the
page shows it instead of failing.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

RUN_FILES = ("config.json", "metrics.jsonl", "summary.json", "confusion_matrix.csv")


@dataclass(frozen=True)
class Confusion:
    """Rows are the true classes, columns the predicted ones."""

    classes: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class RunData:
    path: Path
    label: str  # the folder's name, for legends
    config: dict[str, Any]
    metrics: tuple[dict[str, Any], ...]  # one per epoch, in order
    summary: dict[str, Any] | None
    confusion: Confusion | None
    problems: tuple[str, ...] = ()  # what is missing or unreadable, one sentence each

    @property
    def model(self) -> str | None:
        return self.config.get("model") or (self.summary or {}).get("model")


@dataclass(frozen=True)
class EnsembleData:
    path: Path
    data: str
    members: tuple[tuple[str, str, float | None], ...]  # (label, model, top-1 %)
    top1: float | None
    problems: tuple[str, ...] = field(default=())


def _json(path: Path, problems: list[str]) -> Any:
    if not path.exists():
        problems.append(f"{path.name} is missing")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name} is unreadable ({type(exc).__name__})")
        return None


def _metrics(path: Path, problems: list[str]) -> list[dict[str, Any]]:
    if not path.exists():
        problems.append("metrics.jsonl is missing: no epoch finished, no curves")
        return []
    rows, bad = [], 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        problems.append(f"metrics.jsonl is unreadable ({type(exc).__name__})")
        return []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), (int, float)):
            rows.append(row)
        else:
            bad += 1
    if bad:
        problems.append(f"metrics.jsonl: {bad} unreadable line{'s' if bad > 1 else ''} skipped (a crashed run?)")
    if not rows:
        problems.append("metrics.jsonl has no complete epoch: no curves")
    return rows


def _confusion(path: Path, problems: list[str]) -> Confusion | None:
    if not path.exists():
        problems.append("confusion_matrix.csv is missing")
        return None
    try:
        table = list(csv.reader(path.read_text().splitlines()))
        classes = tuple(table[0][1:])
        counts = tuple(tuple(int(v) for v in row[1:]) for row in table[1:])
        if not classes or len(counts) != len(classes) or any(len(r) != len(classes) for r in counts):
            raise ValueError("not square")
    except (OSError, ValueError, IndexError) as exc:
        problems.append(f"confusion_matrix.csv is unreadable ({exc})")
        return None
    return Confusion(classes, counts)


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in RUN_FILES)


def read_run(path: str | Path) -> RunData:
    """A run folder: at least one of its files must be there, else a one-line :class:`UserError`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such run folder")
    if not is_run_dir(path):
        raise UserError(f"{path}: not a run folder (none of {', '.join(RUN_FILES)} in it)")
    problems: list[str] = []
    config = _json(path / "config.json", problems)
    metrics = _metrics(path / "metrics.jsonl", problems)
    summary = _json(path / "summary.json", problems)
    if summary is None and metrics:
        problems.append("summary.json is missing: the run did not finish (crashed or still running)")
    confusion = _confusion(path / "confusion_matrix.csv", problems)
    if summary is not None and summary.get("interrupted"):
        problems.append(f"the run was interrupted ({summary.get('stop_reason') or 'stopped early'})")
    return RunData(path, path.resolve().name, config if isinstance(config, dict) else {}, tuple(metrics),
                   summary if isinstance(summary, dict) else None, confusion, tuple(problems))  # fmt: skip


def read_ensemble(path: str | Path) -> EnsembleData:
    """An ``ensemble.json`` written by ``cnnzoo ensemble``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        members = tuple((_member_label(m["weights"]), str(m.get("model", "")), _num(m.get("top1")))
                        for m in data["members"])  # fmt: skip
        return EnsembleData(path, str(data.get("data", "")), members, _num(data["ensemble"].get("top1")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not an ensemble report of `cnnzoo ensemble` ({type(exc).__name__}: {exc})") from None


def _member_label(weights: str) -> str:
    p = Path(weights)
    return p.name if p.suffix == "" else f"{p.parent.name}/{p.name}"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def read_inputs(paths: list[str | Path]) -> tuple[list[RunData], list[EnsembleData]]:
    """RUN_DIR arguments: run folders, and ``ensemble.json`` files (or folders holding only one)."""
    runs, ensembles = [], []
    for item in paths:
        p = Path(item)
        if p.is_file() and p.suffix == ".json":
            ensembles.append(read_ensemble(p))
        elif p.is_dir() and not is_run_dir(p) and (p / "ensemble.json").exists():
            ensembles.append(read_ensemble(p / "ensemble.json"))
        else:
            runs.append(read_run(p))
            if (p / "ensemble.json").exists():
                ensembles.append(read_ensemble(p / "ensemble.json"))
    return runs, ensembles
