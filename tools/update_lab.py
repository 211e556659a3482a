"""Regenerate README.md's lab tables from a lab's lab.json (`make lab`): the verdict table, the lab figure
(docs/lab_degradation.svg) and what `cnnzoo reproduce` trains at full length per model recipe.

    python tools/update_lab.py [runs/lab-smoke/lab.json]
"""

import os
import sys
from pathlib import Path

from cnnzoo.lab import read_lab
from cnnzoo.lab.figures import FIGURES, save_svg
from cnnzoo.lab.reproduce import full_length, paper_number
from cnnzoo.errors import UserError
import cnnzoo

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "docs" / "lab_degradation.svg"


def replace_between(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
    head, rest = text.split(begin, 1)
    return head + begin + body + "\n" + end + rest.split(end, 1)[1]


def verdict_table(lab: dict) -> str:
    experiments = list(lab["experiments"].values())
    scale = ", ".join(sorted({e["scale"] for e in experiments}))
    loads = [v for e in experiments for v in e.get("load_average", []) if v is not None]
    threads = sorted({e.get("settings", {}).get("threads") or 0 for e in experiments})
    machine = f"{os.cpu_count()} CPU cores, " + ("torch's default threads" if threads == [0] else
                                               "threads " + ", ".join(str(t or "default") for t in threads))
    if loads:
        machine += f", load average {min(loads):g}-{max(loads):g} during the runs"
    lines = [f"Measured by `cnnzoo lab all --scale {scale}` with cnnzoo {lab.get('cnnzoo_version', '?')} on "
             f"{lab.get('updated', '?')[:10]} ({machine}): {sum(e['seconds'] for e in experiments) / 60:.1f} "
             "minutes in all.", "",
             "| experiment | verdict | the numbers | seconds |", "|---|---|---|---:|"]
    for e in experiments:
        numbers = e["verdict"].split(": ", 2)[-1].replace("|", "/")
        lines.append(f"| `{e['name']}` | {e['status']} | {numbers} | {e['seconds']:.0f} |")
    return "\n".join(lines)


def cost_table() -> str:
    lines = ["| model | data set | paper's top-1 error | recipe | batch | epochs | SGD steps | images |",
             "|---|---|---:|---|---:|---:|---:|---:|"]
    for name in cnnzoo.list_models():
        for dataset in ("CIFAR-10", "ImageNet"):
            try:
                paper = paper_number(name, dataset)
            except UserError:
                continue
            c = full_length(name, dataset)
            lines.append(f"| `{name}` | {dataset} | {paper.value:g}% | `{c['recipe']}` | {c['batch']} | {c['epochs']} "
                         f"| {c['steps']:,} | {c['images']:,} |")
    return "\n".join(lines)


def main() -> None:
    lab = read_lab(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/lab-smoke/lab.json").parent)
    if not lab["experiments"]:
        sys.exit("no lab.json with experiments there: run `cnnzoo lab all` first")
    readme = ROOT / "README.md"
    text = replace_between(readme.read_text(), "lab", verdict_table(lab))
    text = replace_between(text, "reproduce-cost", cost_table())
    readme.write_text(text)
    if "degradation" in lab["experiments"]:
        save_svg(FIGURES["degradation"](lab["experiments"]["degradation"])[0], FIGURE)
    print(f"README.md: {len(lab['experiments'])} verdicts; {FIGURE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
