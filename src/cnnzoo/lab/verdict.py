"""How an experiment ends: its checks, each a rule declared before anything is measured, and one verdict line.

A :class:`Check` is one test of the claim: the rule in words (with its margin) and what was measured. The verdict
follows from the checks alone: **holds** when every check holds, **does not hold at this scale** when none does,
and **partly holds** otherwise, naming the checks that failed. Its line always carries the measured numbers:
:func:`verdict_line` refuses a check without a digit in its numbers, so a verdict can never be typed or hidden.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

HOLDS, PARTLY, FAILS = "holds", "partly holds", "does not hold at this scale"
STATUSES = (HOLDS, PARTLY, FAILS)
_NUMBER = re.compile(r"\d")


@dataclass(frozen=True)
class Check:
    """One test of a claim: ``rule`` (stated with its margin), whether it ``holds``, and the ``numbers`` measured."""

    name: str
    rule: str
    holds: bool
    numbers: str

    def __post_init__(self) -> None:
        if not _NUMBER.search(self.numbers):
            raise ValueError(f"check {self.name!r}: its numbers must hold the measured values, got {self.numbers!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rule": self.rule, "holds": self.holds, "numbers": self.numbers}


def status(checks: Sequence[Check]) -> str:
    if not checks:
        raise ValueError("an experiment without a check has no verdict")
    held = sum(c.holds for c in checks)
    return HOLDS if held == len(checks) else FAILS if held == 0 else PARTLY


def verdict_line(name: str, checks: Sequence[Check]) -> str:
    """``NAME: holds: numbers; numbers`` (a failed check of a partial verdict is marked ``[not: ...]``)."""
    verdict = status(checks)
    parts = [c.numbers if c.holds or verdict == FAILS else f"[not: {c.name}] {c.numbers}" for c in checks]
    return f"{name}: {verdict}: " + "; ".join(parts)


def has_numbers(line: str) -> bool:
    """A verdict line states what was measured: after its status there is at least one digit."""
    _, _, rest = line.partition(": ")
    return any(rest.startswith(s) for s in STATUSES) and bool(_NUMBER.search(rest.split(": ", 1)[-1]))


def below(a: float, b: float, margin: float = 0.0) -> bool:
    """``a`` is lower than ``b`` by more than ``margin`` (strictly)."""
    return a < b - margin


def within(a: float, b: float, margin: float) -> bool:
    """``a`` exceeds ``b`` by at most ``margin`` (``a`` may be lower)."""
    return a - b <= margin


def pct(value: float) -> str:
    return f"{value:.2f}%"


def mean_std(values: Sequence[float]) -> str:
    """``7.31%`` for one value, ``7.31% +- 0.20`` (sample std) for several."""
    if len(values) == 1:
        return pct(values[0])
    m = sum(values) / len(values)
    s = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{m:.2f}% +- {s:.2f}"
