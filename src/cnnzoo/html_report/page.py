"""``cnnzoo.report(...)`` and ``write_run_report(run_dir)``: the page's sections (:mod:`.runs`, :mod:`.model`,
:mod:`.zoo`) assembled and written."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError
from ..registry import list_models, model_info
from . import html as h
from .model import model_section
from .reproductions import reproductions_section
from .runs import read_inputs, read_run, runs_section
from .zoo import zoo_section


def _write(out: str | Path, text: str) -> Path:
    path = Path(out)
    if path.is_dir():
        path = path / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def report(run_dirs: Sequence[str | Path] = (), models: str = "*", model: str | None = None,
           out: str | Path = "report.html", *, cache_dir: str | Path | None = None) -> Path:
    """Write one self-contained HTML page and return its path.

    Args:
        run_dirs: run folders written by ``cnnzoo train`` (curves, confusion matrices, each run's model per layer)
            and ``ensemble.json`` files of ``cnnzoo ensemble``.
        models: fnmatch pattern selecting the zoo section's models.
        model: also show this model's per-layer pictures at its native input.
        cache_dir: where the zoo's analyzer numbers are cached (default ``~/.cache/cnnzoo``).
    """
    if model is not None:
        model_info(model)  # an unknown name fails now, before minutes of work
    reproductions, run_dirs = reproductions_section(list(run_dirs))  # reproductions.csv of `cnnzoo reproduce`
    runs, ensembles = read_inputs(list(run_dirs))
    names = list_models(models)
    if not names:
        raise UserError(f"--models {models!r} matches no registered model; see `cnnzoo list`")
    body, nav = [], [("zoo", "zoo")]
    if reproductions:
        body.append(reproductions)
        nav.insert(0, ("reproductions", "reproductions"))
    if runs or ensembles:
        body.append(runs_section(runs, ensembles))
        nav.insert(0, ("runs", "runs"))
    seen = set()
    for r in runs:
        if r.model and r.model not in seen:
            seen.add(r.model)
            body.append(model_section(r.model, r, anchor=f"run-model-{r.model}"))
    if model is not None:
        body.append(model_section(model))
        nav.append((f"model-{model}", model))
    body.append(zoo_section(names, cache_dir=Path(cache_dir) if cache_dir else None))
    return _write(out, h.page("cnnzoo report", body, nav=nav))


def write_run_report(run_dir: str | Path) -> Path:
    """``RUN_DIR/report.html``: the run's curves, confusion matrix and config, and its model per layer (no zoo)."""
    run = read_run(run_dir)
    body = [runs_section([run], [])]
    if run.model:
        try:
            body.append(model_section(run.model, run, anchor="model"))
        except UserError as exc:
            body.append(h.p(f"no per-layer pictures: {exc}", "problem"))
    return _write(Path(run_dir) / "report.html", h.page(f"cnnzoo run {run.label}", body))
