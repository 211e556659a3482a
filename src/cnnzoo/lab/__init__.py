"""The lecture, runnable: each claim of CS231n lecture 9 as an experiment with a verdict (``cnnzoo lab``), and a
model's paper recipe held against its paper's number (``cnnzoo reproduce``).

    from cnnzoo.lab import EXPERIMENTS, LabSettings, run_lab, reproduce
    lab = run_lab([get_experiment("degradation")], LabSettings(scale="smoke", out="runs/lab"))
    print(lab["experiments"]["degradation"]["verdict"])

- ``experiment``: what an experiment is (claim, source, declared rule, procedure) and its ``Outcome``;
- ``verdict``: checks and the verdict line (always with its numbers);
- ``analytic``: inception-cost, vgg-memory, squeeze and the analytic half of small-filters (``cnnzoo.analyze``);
- ``trained``: degradation, small-filters, ensemble, preact, wide-vs-deep, stochastic-depth, fractal-columns,
  dense-efficiency (``cnnzoo.train``); ``variants``: their lab-sized networks (the harder offline data set,
  ``cluttered-digits``, is :mod:`cnnzoo.data.cluttered`);
- ``experiments``: the table; ``runner``: settings, data and run folders; ``session``: ``run_lab``, lab.json;
- ``figures``: the papers' figures (the one module that imports :mod:`cnnzoo.html_report`); ``page``: lab.html;
- ``reproduce``: ``cnnzoo reproduce`` and reproductions.csv; ``commands``: the CLI.
"""

from .experiments import EXPERIMENTS, get_experiment, select
from .reproduce import paper_number, reproduce
from .runner import LabSettings
from .session import read_lab, run_lab

__all__ = ["EXPERIMENTS", "LabSettings", "get_experiment", "paper_number", "read_lab", "reproduce", "run_lab",
           "select"]
