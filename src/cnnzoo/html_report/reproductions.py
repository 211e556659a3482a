"""Reproductions beside the papers' numbers: ``cnnzoo report runs/repro/reproductions.csv`` (or its folder).

The table is written by ``cnnzoo reproduce`` (one line per call; columns include ``model``, ``dataset``,
``paper_value``, ``final_error_mean``, ``final_error_std``, ``seeds``). Each line becomes one row of the figure: the
measured final error as a dot with a +- one standard deviation bar, and the paper's number as a hollow diamond.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from . import html as h
from .html import figure, to_svg

CSV_NAME = "reproductions.csv"


def _float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def reproductions_section(paths: list[Any]) -> tuple[str | None, list[Any]]:
    """The section for the reproduction tables among ``paths`` (a ``reproductions.csv``, or a folder holding one
    and no run), and the other paths (run folders, ensembles) for the rest of the page."""
    tables = [Path(p) for p in paths if Path(p).name == CSV_NAME and Path(p).is_file()]
    tables += [Path(p) / CSV_NAME for p in paths if Path(p).is_dir() and (Path(p) / CSV_NAME).is_file()
               and not (Path(p) / "config.json").exists()]
    rest = [p for p in paths if Path(p) not in tables and Path(p) / CSV_NAME not in tables]
    if not tables:
        return None, rest
    rows = [row for table in tables for row in csv.DictReader(table.read_text(encoding="utf-8").splitlines())]
    rows = [r for r in rows if _float(r.get("final_error_mean", "")) is not None]
    parts = [h.p(f"{len(rows)} reproductions from {', '.join(str(t) for t in tables)}: the final test error, mean "
                 "+- std over seeds (dot and bar), against the paper's number (diamond).")]
    if rows:
        fig = figure(figsize=(8, 0.42 * len(rows) + 1.4))
        ax = fig.subplots()
        for y, r in enumerate(rows):
            m, s, paper = _float(r["final_error_mean"]), _float(r.get("final_error_std", "")), _float(r["paper_value"])
            ax.errorbar([m], [y], xerr=[[s or 0.0], [s or 0.0]], fmt="o", color="#1f77b4", capsize=3,
                        label="measured (final), mean +- std" if y == 0 else None)
            if paper is not None:
                ax.plot([paper], [y], "D", mfc="none", color="#d62728", label="paper" if y == 0 else None)
        ax.set_yticks(range(len(rows)), [f"{r['model']} ({r['dataset']}, {r['seeds']} seeds)" for r in rows],
                      fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("top-1 error (%)")
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        parts.append(to_svg(fig, title="reproductions against the papers' numbers", tight=True))
        parts.append(h.table(["model", "data set", "paper (%)", "final (%)", "std", "best epoch (%, extra)", "seeds",
                              "epochs", "device"],
                             [[h.cell(r["model"]), h.cell(r["dataset"]), h.cell(r["paper_value"] or "-", numeric=True),
                               h.cell(r["final_error_mean"], numeric=True), h.cell(r["final_error_std"] or "-",
                                                                                    numeric=True),
                               h.cell(r["best_error_mean"], numeric=True), h.cell(r["seeds"], numeric=True),
                               h.cell(r["epochs"], numeric=True), h.cell(r["device"])] for r in rows]))
    return h.section("reproductions", "Reproductions", parts), rest
