"""What a lab experiment is: a claim with its source, the rule that will judge it, and a procedure that measures.

:class:`Experiment` holds the words (claim in the lab's own words, the paper with its figure or table and section,
the verdict rule with its margins, stated before anything runs) and ``run(lab, name) -> Outcome``. :class:`Outcome`
is what the procedure measured: the protocol as run, the checks, the numbers behind the figures, and one entry
per trained run. :func:`record` joins both into the experiment's entry of lab.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .runner import Lab, RunRecord
from .verdict import Check, status, verdict_line


@dataclass
class Outcome:
    protocol: str  # what was run, in words (models, data, input side, recipe, length, seeds)
    checks: list[Check]
    measurements: dict[str, Any] = field(default_factory=dict)  # the numbers behind the figures (JSON data)
    runs: list[dict[str, Any]] = field(default_factory=list)  # RunRecord.to_dict() + the experiment's own keys


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    claim: str
    source: str
    rule: str
    trained: bool
    run: Callable[[Lab, str], Outcome]

    def record(self, outcome: Outcome, *, scale: str, seconds: float, load: list[float | None]) -> dict[str, Any]:
        """The experiment's lab.json entry."""
        return {
            "name": self.name, "title": self.title, "claim": self.claim, "source": self.source, "rule": self.rule,
            "kind": "trained" if self.trained else "analytic", "scale": scale, "protocol": outcome.protocol,
            "checks": [c.to_dict() for c in outcome.checks], "status": status(outcome.checks),
            "verdict": verdict_line(self.name, outcome.checks), "measurements": outcome.measurements,
            "runs": outcome.runs, "seconds": round(seconds, 2), "load_average": load,
        }


def run_entry(record: RunRecord, **extra: Any) -> dict[str, Any]:
    """A trained run's lab.json entry: its numbers and curve, with the experiment's own keys (group, depth...)."""
    return {**record.to_dict(), **extra}


def mean(values: list[float]) -> float:
    return sum(values) / len(values)
