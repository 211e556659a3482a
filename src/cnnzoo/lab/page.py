"""OUT/lab.html: lab.json as one offline page: the verdict table, then per experiment its claim, source, rule,
protocol, checks, figures (drawn as the papers draw them) and runs. Built from lab.json alone, so it can be drawn
again at any time; nothing is fetched."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .figures import FIGURES, html as h

_STATUS_CLASS = {"holds": "", "partly holds": "problem", "does not hold at this scale": "problem"}


def _verdict_table(experiments: list[dict[str, Any]]) -> str:
    rows = [[f'<td><a href="#{h.escape(e["name"])}">{h.escape(e["name"])}</a></td>', h.cell(e["kind"]),
             h.cell(e["scale"]), h.cell(e["status"]), h.cell(e["verdict"].split(": ", 2)[-1]),
             h.cell(f"{e['seconds']:.1f}", e["seconds"], numeric=True)] for e in experiments]
    return h.table(["experiment", "kind", "scale", "verdict", "numbers", "seconds"], rows, sortable=True)


def _runs_table(runs: list[dict[str, Any]], page_dir: Path) -> str:
    rows = []
    for r in runs:
        try:
            link = os.path.relpath(Path(r["path"]) / "report.html", page_dir)
        except ValueError:  # another drive (Windows)
            link = str(Path(r["path"]) / "report.html")
        rows.append([
            h.cell(r["label"]), h.cell(str(r["seed"]), r["seed"], numeric=True),
            h.cell(f"{r['params']:,}", r["params"], numeric=True), h.cell(str(r["epochs"]), numeric=True),
            h.cell(f"{r['final_train_error']:.2f}", r["final_train_error"], numeric=True),
            h.cell(f"{r['final_val_error']:.2f}", r["final_val_error"], numeric=True),
            h.cell(f"{r['best_val_error']:.2f}", r["best_val_error"], numeric=True),
            h.cell(f"{r['seconds_per_epoch']:.2f}", r["seconds_per_epoch"], numeric=True),
            f'<td><a href="{h.escape(link)}">{h.escape(Path(r["path"]).name)}</a></td>',
        ])
    return h.table(["run", "seed", "params", "epochs", "final train error (%)", "final val error (%)",
                    "best-epoch val error (%, extra)", "train s/epoch", "run folder"], rows, sortable=True)


def _section(e: dict[str, Any], page_dir: Path) -> str:
    checks = [[h.cell(c["name"]), h.cell(c["rule"]), h.cell(c["numbers"]), h.cell("holds" if c["holds"] else "no")]
              for c in e["checks"]]
    load = ", ".join("-" if v is None else f"{v:g}" for v in e.get("load_average", []))
    parts = [
        f'<p class="{_STATUS_CLASS.get(e["status"], "")}"><b>{h.escape(e["verdict"])}</b></p>',
        h.key_values([("claim", e["claim"]), ("source", e["source"]), ("verdict rule", e["rule"]),
                      ("protocol", e["protocol"]), ("time", f"{e['seconds']:.1f} s (load average before, after: "
                                                          f"{load})")]),
        h.table(["check", "rule", "measured", "result"], checks),
    ]
    try:
        parts += FIGURES[e["name"]](e)
    except (KeyError, ValueError, IndexError, ZeroDivisionError) as exc:
        parts.append(h.p(f"no figure: {type(exc).__name__}: {exc}", "problem"))
    if e["runs"]:
        parts.append(_runs_table(e["runs"], page_dir))
    return h.section(e["name"], e["title"], parts)


def write_page(lab: dict[str, Any], path: Path) -> Path:
    experiments = list(lab["experiments"].values())
    intro = h.p("Each claim of CS231n lecture 9 as an experiment: the claim and its source, the rule that judges it "
                "(declared before anything is measured), the protocol, the measured numbers and the verdict they "
                "give. 'Does not hold at this scale' is a result, not an error. Errors are 100 - top-1 in %.")
    body = [intro, _verdict_table(experiments), *(_section(e, path.parent) for e in experiments)]
    nav = [(e["name"], e["name"]) for e in experiments]
    text = h.page("cnnzoo lab: the lecture, runnable", body, nav=nav)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
