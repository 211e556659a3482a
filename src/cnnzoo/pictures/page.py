"""``cnnzoo.report(...)`` and ``write_run_report(run_dir)``: the sections of the page and where they come from."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import html as h
from .reproductions import reproductions_section
from .runs import EnsembleData, RunData, read_inputs, read_run

_ARXIV = re.compile(r"arXiv:(\d{4}\.\d{4,5})")


def _paper_cell(paper: str) -> str:
    """The citation as text; its arXiv id, if any, as a plain link (nothing is loaded from it)."""
    match = _ARXIV.search(paper)
    text = h.escape(paper)
    if match:
        text += f' <a href="https://arxiv.org/abs/{match.group(1)}">arXiv</a>'
    return f"<td>{text}</td>"


def zoo_section(names: list[str], *, cache_dir: Path | None = None) -> str:
    from .ilsvrc import HUMAN_SOURCE, HUMAN_TOP5_ERROR_PCT, ILSVRC_WINNERS
    from .zoo import PANELS, zoo_rows
    from .zoo_figures import bubble_chart, ilsvrc_chart

    rows = zoo_rows(names, cache_dir=cache_dir)
    winners = [[h.cell(str(w.year)), h.cell(w.name), h.cell(f"{w.top5_error_pct:g}", numeric=True),
                h.cell("shallow" if w.depth_layers is None else str(w.depth_layers), numeric=True), h.cell(w.source)]
               for w in ILSVRC_WINNERS]  # fmt: skip
    winners.append([h.cell("-"), h.cell("human"), h.cell(f"{HUMAN_TOP5_ERROR_PCT:g}", numeric=True), h.cell("-"),
                    h.cell(HUMAN_SOURCE)])  # fmt: skip
    bubbles = bubble_chart(rows)
    titles = {key: title for key, title, _ in PANELS}
    table_rows = []
    for r in rows:
        c, hh, w = r.input_size
        errors = "; ".join(f"{titles[k].split(' (')[0]} {v.value_pct:g}%" for k, v in r.reported.items())
        detail = "; ".join(f"{v.dataset} [{v.source}]" for v in r.reported.values())
        first = next(iter(r.reported.values()), None)
        table_rows.append([
            h.cell(r.name), h.cell(r.family), h.cell(f"{c}x{hh}x{w}", hh),
            h.cell(f"{r.params:,}", r.params, numeric=True), h.cell(h.si(r.macs), r.macs, numeric=True),
            h.cell(h.mib(r.activation_bytes), r.activation_bytes, numeric=True),
            h.cell(f"{h.mib(r.train_memory_bytes)} @ {r.batch_size}", r.train_memory_bytes or 0, numeric=True),
            h.cell(errors or "-", first.value_pct if first else 1e9, title=detail), _paper_cell(r.paper),
        ])  # fmt: skip
    parts = [
        "<h3>ILSVRC winners (CS231n lecture 9)</h3>", ilsvrc_chart(),
        h.table(["year", "entry", "top-5 error (%)", "depth (layers)", "source"], winners),
        "<h3>Accuracy against operations</h3>",
        h.p("Each registered model with a paper-reported error: the lowest single-model number its registry entry "
            "lists per data set (ensembles left out; the table below names data set and source of each)."),
        bubbles or h.p("No model of this selection has a paper-reported error.", "note"),
        "<h3>Every model</h3>",
        h.p("Params exact; MACs (multiply-adds) and activation memory (fp32, every newly allocated layer output) "
            "per image at the native input; training memory at the recipe's batch size (SGD with momentum, fp32), "
            "all from the analyzer. Click a column header to sort.", "note"),
        h.table(["model", "family", "input", "params", "MACs", "activations", "training memory @ batch",
                 "reported error", "paper"], table_rows, sortable=True),  # fmt: skip
    ]
    return h.section("zoo", f"The zoo ({len(rows)} models)", parts)


def _analyze_for(name: str, run: RunData | None) -> Any:
    """The analyzer's report for ``name``: at the run's input size, classes and options when there is a run."""
    import torch

    from ..analysis import AnalysisError, analyze
    from ..registry import create_model, model_info

    info = model_info(name)
    if run is None:
        return analyze(name, training=False)
    cfg = run.config
    channels = int(cfg.get("in_channels") or info.input_size[0])
    side = int(cfg.get("image_size") or info.input_size[1])
    with torch.device("meta"):
        net = create_model(name, num_classes=cfg.get("num_classes"), in_channels=channels,
                           **dict(cfg.get("model_kwargs") or {}))  # fmt: skip
    try:
        return analyze(net, (channels, side, side), training=False)
    except AnalysisError as exc:
        raise UserError(str(exc)) from None


def model_section(name: str, run: RunData | None = None, *, anchor: str | None = None) -> str:
    from .model_figures import layer_charts, receptive_field_chart

    report = _analyze_for(name, run)
    where = "x".join(map(str, report.input_size))
    title = f"{name} at {where}" + (f" (as in run {run.label})" if run is not None else "")
    t = report.totals
    rf = report.receptive_field
    summary = (f"{t.params:,} params, {h.si(t.macs)} MACs, {h.mib(t.activation_bytes)} of activations per image; "
               f"receptive field {'global' if rf is None else f'{max(rf.size):g} px'}.")  # fmt: skip
    parts = [h.p(summary), layer_charts(report, title=title) or h.p("no layers", "note"),
             receptive_field_chart(report, title=name) or ""]
    return h.section(anchor or f"model-{name}", f"Model: {title}", parts)


def _config_rows(runs: list[RunData]) -> str:
    rows = []
    for r in runs:
        cfg, s = r.config, r.summary or {}
        recipe = cfg.get("recipe", {}).get("name") if isinstance(cfg.get("recipe"), dict) else s.get("recipe")
        last = r.metrics[-1] if r.metrics else {}
        top1 = s.get("final_val_top1", last.get("val_top1"))
        epochs = f"{len(r.metrics)}/{cfg.get('epochs', s.get('planned_epochs', '?'))}"
        rows.append([h.cell(r.label), h.cell(str(r.model or "?")), h.cell(str(recipe or "?")),
                     h.cell(str(cfg.get("data", s.get("data", "?")))), h.cell(str(cfg.get("seed", s.get("seed", "?")))),
                     h.cell(str(cfg.get("image_size", "?")), numeric=True), h.cell(epochs, numeric=True),
                     h.cell("-" if top1 is None else f"{top1:.2f}", numeric=True)])  # fmt: skip
    return h.table(["run", "model", "recipe", "data", "seed", "image px", "epochs", "final val top-1 (%)"], rows)


def runs_section(runs: list[RunData], ensembles: list[EnsembleData]) -> str:
    from .run_figures import confusion_heatmap, ensemble_bars, learning_curves, throughput

    parts = []
    for r in runs:
        for problem in r.problems:
            parts.append(h.p(f"{r.label}: {problem}", "problem"))
    curves = learning_curves(runs)
    curves = curves or h.p("No epoch finished in any run: no curves.", "problem")
    parts.append(f'<div class="side"><div class="wide">{curves}</div><div>{_config_rows(runs)}</div></div>')
    speed = throughput(runs)
    if speed:
        parts.append(speed)
    for r in runs:
        heat = confusion_heatmap(r)
        if heat:
            parts.append(f"<h3>{h.escape(r.label)}: confusion matrix (validation)</h3>{heat}")
    for e in ensembles:
        bars = ensemble_bars(e)
        parts.append(f"<h3>Ensemble {h.escape(str(e.path))}</h3>" + (bars or h.p("no member has a top-1", "note")))
    return h.section("runs", "Runs" if runs else "Ensembles", parts)


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
    from ..registry import list_models, model_info

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
