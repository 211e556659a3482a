"""The lab's experiments, in the lecture's order: one claim of CS231n lecture 9 each."""

from __future__ import annotations

import difflib

from ..errors import UnknownNameError
from .analytic import INCEPTION_COST, SQUEEZE, VGG_MEMORY
from .experiment import Experiment
from .trained import (DEGRADATION, DENSE_EFFICIENCY, ENSEMBLE, FRACTAL_COLUMNS, PREACT, SMALL_FILTERS,
                      STOCHASTIC_DEPTH, WIDE_VS_DEEP)

EXPERIMENTS: tuple[Experiment, ...] = (
    DEGRADATION, SMALL_FILTERS, INCEPTION_COST, VGG_MEMORY, ENSEMBLE, PREACT, WIDE_VS_DEEP, STOCHASTIC_DEPTH,
    FRACTAL_COLUMNS, DENSE_EFFICIENCY, SQUEEZE,
)
NAMES = tuple(e.name for e in EXPERIMENTS)


def get_experiment(name: str) -> Experiment:
    for experiment in EXPERIMENTS:
        if experiment.name == name:
            return experiment
    close = difflib.get_close_matches(name, NAMES, n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; experiments: {', '.join(NAMES)} (or all)"
    raise UnknownNameError(f"unknown experiment {name!r}{hint}")


def select(names: list[str]) -> list[Experiment]:
    """``all`` or names, in the lecture's order, each once."""
    if "all" in names:
        return list(EXPERIMENTS)
    wanted = {get_experiment(n).name for n in names}
    return [e for e in EXPERIMENTS if e.name in wanted]
