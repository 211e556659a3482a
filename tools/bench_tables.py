"""Regenerate BENCHMARKS.md's measured tables from benchmarks/results.json (the last step of ``make bench``).

    python tools/bench_tables.py            # rewrite the blocks between markers
    python tools/bench_tables.py --check    # exit 1 when BENCHMARKS.md is not what results.json gives

A block is the text between ``<!-- bench:SECTION -->`` and ``<!-- /bench:SECTION -->``; it becomes: the machine
and load line of that section of the results file (benchmarks/machine.py writes it), then its tables, then its
notes. Everything outside the markers is prose and stays as written. A section the results file does not hold (its
benchmark never ran under the load limit) gets a line saying so, never an old figure.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS, DOC = ROOT / "benchmarks" / "results.json", ROOT / "BENCHMARKS.md"
BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S)
ISA = {"avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512F", "avx512_bf16": "AVX512_BF16", "amx_bf16": "AMX-BF16",
       "amx_tile": "AMX-TILE"}  # fmt: skip


def cell(value: Any, fmt: str = "{}") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value.replace("|", "\\|")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return fmt.format(value)


def machine_line(section: dict[str, Any]) -> str:
    m, load = section["machine"], section["load"]
    where = f"family {m['family']} model {m['model']}" + (f", {m['hypervisor']} guest" if m.get("hypervisor") else "")
    isa = ", ".join(name for flag, name in ISA.items() if m["isa"].get(flag)) or "no AVX2"
    bf16 = f", bf16 {m['peak_bf16_gflops']:.1f} GFLOP/s" if m.get("peak_bf16_gflops") else ", no native bf16"
    rose = (f" (the benchmark's own {m['threads']} threads count in it)" if load["after"][0] > load["limit"]
            else "")
    command = " ".join(["python", section["script"], *section["argv"]])
    return (f"Measured {section['date']} with `{command}` on {m['model_name']} ({where}), {m['cores']} cores, "
            f"{isa}; peak fp32 {m['peak_fp32_gflops']:.1f} GFLOP/s{bf16} ({m['cores']} cores x "
            f"{m['clock_ghz']:.2f} GHz from {m['clock_source']} x {m['fp32_flop_per_cycle']} FP32 FLOP/cycle); "
            f"torch {m['torch']}, {m['threads']} threads. Load average {load['before'][0]:.2f} at the start, "
            f"{load['after'][0]:.2f} at the end{rose} (limit {load['limit']:g}).")


def table_lines(table: dict[str, Any]) -> list[str]:
    cols = table["columns"]
    lines = [f"**{table['title']}**", ""] if table.get("title") else []
    lines += ["| " + " | ".join(c["title"] for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(row.get(c["key"]), c.get("fmt", "{}")) for c in cols) + " |"
              for row in table["rows"]]  # fmt: skip
    return lines


def render(name: str, section: dict[str, Any] | None) -> str:
    if section is None:
        return f"*Not measured under the load limit yet: `make bench` on an idle machine fills this block ({name}).*\n"
    lines = [f"*Generated from benchmarks/results.json by tools/bench_tables.py.* {machine_line(section)}", ""]
    for table in section["tables"]:
        lines += [*table_lines(table), ""]
    lines += [f"- {note}" for note in section["notes"]]
    return "\n".join(lines).rstrip("\n") + "\n"


def regenerate(doc: str, results: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    """(the new text, the sections filled, the sections in the results file without a block in ``doc``)."""
    sections = results.get("sections", {})
    filled: list[str] = []

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name in sections:
            filled.append(name)
        return match.group(1) + render(name, sections.get(name)) + match.group(4)

    text = BLOCK.sub(fill, doc)
    return text, filled, sorted(set(sections) - set(block_names(doc)))


def block_names(doc: str) -> list[str]:
    return [m["name"] for m in BLOCK.finditer(doc)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--doc", type=Path, default=DOC)
    p.add_argument("--check", action="store_true", help="exit 1 when the document is not up to date")
    args = p.parse_args(argv)
    results = json.loads(args.results.read_text()) if args.results.exists() else {"sections": {}}
    doc = args.doc.read_text()
    text, filled, orphans = regenerate(doc, results)
    for name in orphans:
        print(f"bench_tables: warning: section {name!r} of {args.results.name} has no block in {args.doc.name} "
              f"(add <!-- bench:{name} --> ... <!-- /bench:{name} -->)", file=sys.stderr)
    if args.check:
        if text != doc:
            print(f"{args.doc.name} is not what {args.results.name} gives: run python tools/bench_tables.py",
                  file=sys.stderr)
            return 1
        return 0
    args.doc.write_text(text)
    print(f"{args.doc.name}: {len(block_names(doc))} blocks, {len(filled)} from {args.results.name} "
          f"({', '.join(filled) or 'none'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
