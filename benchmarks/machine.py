"""What makes a benchmark figure trustworthy, shared by every script in benchmarks/: the machine it was taken on,
its peak, the load rule, alternated warm timing, and the results file ``make bench`` fills.

* ``probe()`` reads the CPU from ``lscpu`` (``/proc/cpuinfo`` where lscpu says nothing): model, the instruction sets
  that decide a convolution's speed (AVX2, FMA, AVX-512F, AVX512_BF16, AMX-BF16/AMX-TILE), cores, clock; and
  torch's version and thread count.
* The peak: cores x clock x FLOP per cycle per core. FP32: 32 for AVX2 FMA (8 lanes x 2 for the multiply-add x 2
  FMA pipes), 64 for AVX-512 (16 lanes x 2 x 2 pipes: assumed two 512-bit FMA pipes, as server parts have; a
  one-pipe part reaches half). BF16 twice the FP32 rate where the CPU has it natively (AVX512_BF16's dot products
  of bf16 pairs, or AMX); AMX tiles can go beyond that rate, so with AMX the bf16 peak is a floor, and it is noted.
  The clock is lscpu's "CPU max MHz" when it gives one, else /proc/cpuinfo's "cpu MHz" (a KVM guest usually shows
  only the latter, the nominal clock); the source is recorded.
* The load rule: a benchmark **refuses to record** when the 1-minute load average at its start is above
  ``nproc x 0.6`` (``LOAD_LIMIT``): it still runs and prints every figure, marked "not recorded", and writes
  nothing to the results file. The load average after the run is recorded beside the one before.
* ``alternate(...)``: contenders timed in alternating rounds after one untimed warm call each (warm vs warm), so a
  change of load hits all of them alike; every ratio a benchmark prints is taken against a baseline timed so.
* ``Bench``: one benchmark run. ``bench.table(...)`` declares a table, ``table.add(...)`` prints and keeps a row,
  ``bench.note(...)`` a sentence; ``bench.finish()`` writes the section (machine block, load, tables, notes) into
  ``benchmarks/results.json``, from which ``tools/bench_tables.py`` generates BENCHMARKS.md's tables.

Results file, schema 1::

    {"schema": 1,
     "sections": {"<section>": {"script": "benchmarks/x.py", "argv": [...], "date": "2026-12-03 10:00 UTC",
                                "machine": {...probe().to_dict()...},
                                "load": {"before": [l1, l5, l15], "after": [...], "limit": 1.2},
                                "tables": [{"name": ..., "title": ..., "columns": [{"key", "title", "fmt"}],
                                            "rows": [{key: value}]}],
                                "notes": ["..."]}}}

A section is replaced whole by the next recorded run of its benchmark; a refused run leaves it as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"
SCHEMA = 1
LOAD_FACTOR = 0.6  # a benchmark records only when the 1-minute load average is at most nproc x this at its start

# the instruction sets that decide a convolution's speed on the CPU: lscpu's flag -> the name printed
ISA_FLAGS = {"avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512F", "avx512_bf16": "AVX512_BF16",
             "amx_bf16": "AMX-BF16", "amx_tile": "AMX-TILE"}  # fmt: skip


@dataclass(frozen=True)
class Cpu:
    """The CPU as lscpu (and /proc/cpuinfo) describe it, and its peak FLOP rates."""

    model_name: str
    vendor: str
    family: str
    model: str
    hypervisor: str | None
    cores: int  # physical cores: cores per socket x sockets
    nproc: int  # CPUs this process may run on (the load rule's unit)
    isa: dict[str, bool]
    clock_ghz: float
    clock_source: str
    fp32_flop_per_cycle: int
    bf16_flop_per_cycle: int | None  # None: no native bf16 (autocast bf16 converts through fp32)
    peak_fp32_gflops: float
    peak_bf16_gflops: float | None
    peak_note: str

    def peak_flops(self, precision: str = "fp32") -> float:
        """FLOP/s of the peak for ``precision`` ("fp32" or "bf16"; bf16 without native support: the fp32 peak)."""
        if precision == "bf16" and self.peak_bf16_gflops:
            return self.peak_bf16_gflops * 1e9
        return self.peak_fp32_gflops * 1e9


def parse_cpu(lscpu: str, cpuinfo: str = "", nproc: int | None = None) -> Cpu:
    """A :class:`Cpu` from ``lscpu``'s output and ``/proc/cpuinfo``'s text (pure: testable on recorded texts)."""
    fields = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lscpu.splitlines()) if v}
    info = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in cpuinfo.splitlines()) if v}
    flags = set((fields.get("Flags") or info.get("flags", "")).split())
    isa = {flag: flag in flags for flag in ISA_FLAGS}
    cores = int(fields.get("Core(s) per socket", "0") or 0) * int(fields.get("Socket(s)", "1") or 1)
    cores = cores or int(fields.get("CPU(s)", "0") or 0) or (nproc or 1)
    mhz, source = float(fields.get("CPU max MHz", "0") or 0), "lscpu's CPU max MHz"
    if not mhz:
        mhz = float(info.get("cpu MHz", "0") or 0)
        source = "/proc/cpuinfo's cpu MHz; lscpu gives no CPU max MHz"
    if not mhz:
        found = re.search(r"@\s*([\d.]+)\s*GHz", fields.get("Model name", ""))
        mhz, source = (float(found.group(1)) * 1e3, "the nominal clock in the model name") if found else (0.0, "none")
    if isa["avx512f"]:
        fp32, unit = 64, "AVX-512 FMA: 16 lanes x 2 for the multiply-add x 2 pipes, two 512-bit FMA pipes assumed"
    elif isa["avx2"] and isa["fma"]:
        fp32, unit = 32, "AVX2 FMA: 8 lanes x 2 for the multiply-add x 2 pipes"
    elif "avx" in flags:
        fp32, unit = 16, "AVX without FMA: 8 lanes x 1 multiply pipe + 1 add pipe"
    else:
        fp32, unit = 8, "SSE: 4 lanes x 1 multiply pipe + 1 add pipe"
    native_bf16 = isa["avx512_bf16"] or isa["amx_bf16"]
    bf16 = 2 * fp32 if native_bf16 else None
    ghz = mhz / 1e3
    note = f"{cores} cores x {ghz:.2f} GHz [{source}] x {fp32} FP32 FLOP/cycle [{unit}]"
    if bf16:
        native = ", ".join(ISA_FLAGS[f] for f in ("avx512_bf16", "amx_bf16") if isa[f])
        note += f"; bf16 x2 = {bf16} FLOP/cycle [native: {native}]"
    if isa["amx_bf16"]:
        note += "; AMX tiles present: oneDNN's AMX kernels can exceed this bf16 figure, which is then a floor"
    return Cpu(
        model_name=fields.get("Model name") or info.get("model name", "unknown CPU"),
        vendor=fields.get("Vendor ID") or info.get("vendor_id", ""),
        family=fields.get("CPU family") or info.get("cpu family", ""),
        model=fields.get("Model") or info.get("model", ""),
        hypervisor=fields.get("Hypervisor vendor"),
        cores=cores,
        nproc=nproc or cores,
        isa=isa,
        clock_ghz=round(ghz, 3),
        clock_source=source,
        fp32_flop_per_cycle=fp32,
        bf16_flop_per_cycle=bf16,
        peak_fp32_gflops=round(cores * ghz * fp32, 1),
        peak_bf16_gflops=round(cores * ghz * bf16, 1) if bf16 else None,
        peak_note=note,
    )


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def read_cpu() -> Cpu:
    """This machine's :class:`Cpu` (``lscpu`` and ``/proc/cpuinfo``; either may be missing)."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"}).stdout
    except OSError:
        lscpu = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().split("\n\n")[0]  # the first CPU's block
    except OSError:
        cpuinfo = ""
    return parse_cpu(lscpu, cpuinfo, nproc())


@dataclass(frozen=True)
class Machine:
    """The CPU, and the software and thread count a benchmark ran with."""

    cpu: Cpu
    torch: str
    threads: int
    python: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.cpu), "torch": self.torch, "threads": self.threads, "python": self.python}

    def lines(self) -> list[str]:
        c = self.cpu
        isa = ", ".join(name for flag, name in ISA_FLAGS.items() if c.isa[flag]) or "no AVX2, AVX-512 or AMX"
        where = f"family {c.family} model {c.model}" + (f", {c.hypervisor} guest" if c.hypervisor else "")
        bf16 = f", bf16 {c.peak_bf16_gflops:.1f} GFLOP/s" if c.peak_bf16_gflops else ", no native bf16"
        return [f"cpu: {c.model_name} ({where}), {c.cores} cores, {c.nproc} CPUs to this process; {isa}",
                f"peak: fp32 {c.peak_fp32_gflops:.1f} GFLOP/s{bf16}: {c.peak_note}",
                f"torch {self.torch}, {self.threads} threads, python {self.python}"]  # fmt: skip


def probe() -> Machine:
    import torch

    return Machine(read_cpu(), torch.__version__, torch.get_num_threads(), platform.python_version())


def load_limit(n: int) -> float:
    return round(n * LOAD_FACTOR, 2)


def may_record(load1: float, n: int) -> bool:
    """The load rule: figures are recorded only when the 1-minute load average is at most ``nproc x 0.6``."""
    return load1 <= load_limit(n)


def training_flops_per_image(macs: float) -> float:
    """One image through forward and backward: 2 FLOPs per multiply-add, x3 for forward plus backward's input and
    weight gradients (each the forward's cost)."""
    return 2 * macs * 3


def alternate(contenders: Mapping[str, Callable[[], Any]], rounds: int, *, warm: int = 1,
              after_round: Callable[[int, dict[str, list[float]]], None] | None = None) -> dict[str, list[float]]:
    """Wall seconds of each contender per round: ``warm`` untimed calls each first, then ``rounds`` rounds, each
    calling every contender once, in an order rotated by one each round (no contender always runs first)."""
    names = list(contenders)
    for _ in range(warm):
        for name in names:
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
        if after_round is not None:
            after_round(r, times)
    return times


@dataclass
class Table:
    """Rows of one table: each ``add`` prints the row (marked "not recorded" when the run may not record)."""

    name: str
    title: str
    columns: list[dict[str, str]]  # {"key", "title", "fmt"}: fmt a str.format spec for the value, e.g. "{:.2f}x"
    recorded: bool
    rows: list[dict[str, Any]] = field(default_factory=list)

    def print_header(self) -> None:
        if self.title:
            print(f"\n{self.title}")
        print("| " + " | ".join(c["title"] for c in self.columns) + " |")
        print("|" + "---|" * len(self.columns))

    def add(self, **row: Any) -> dict[str, Any]:
        missing = [c["key"] for c in self.columns if c["key"] not in row]
        if missing:
            raise KeyError(f"table {self.name}: row without {', '.join(missing)}")
        self.rows.append(row)
        mark = "" if self.recorded else "  (not recorded)"
        print("| " + " | ".join(cell(row[c["key"]], c.get("fmt", "{}")) for c in self.columns) + " |" + mark,
              flush=True)  # fmt: skip
        return row

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "columns": self.columns, "rows": self.rows}


def cell(value: Any, fmt: str = "{}") -> str:
    """One table cell: None as a dash, text as written, numbers through ``fmt``."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    return fmt.format(value)


def col(key: str, title: str, fmt: str = "{}") -> dict[str, str]:
    return {"key": key, "title": title, "fmt": fmt}


class Bench:
    """One run of one benchmark: checks the machine at the start, records its tables at the end (or refuses)."""

    def __init__(self, section: str, *, results: Path | None = RESULTS, argv: Sequence[str] | None = None,
                 trial: str | None = None, loadavg: Callable[[], tuple[float, float, float]] = os.getloadavg,
                 machine: Machine | None = None) -> None:
        """``trial``: a reason this run is a trial, never recorded (e.g. "--quick"); ``results``: None records
        nowhere."""
        self.section, self.results, self.loadavg = section, results, loadavg
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self.machine = machine or probe()
        self.date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        self.load_before = tuple(round(x, 2) for x in loadavg())
        self.limit = load_limit(self.machine.cpu.nproc)
        self.refusal = None
        if not may_record(self.load_before[0], self.machine.cpu.nproc):
            self.refusal = (f"load average {self.load_before[0]:.2f} at the start is above the limit {self.limit:g} "
                            f"(nproc {self.machine.cpu.nproc} x {LOAD_FACTOR})")
        elif trial:
            self.refusal = f"a trial run ({trial})"
        self.tables: list[Table] = []
        self.notes: list[str] = []
        print(f"# {section}: {self.date}")
        for line in self.machine.lines():
            print(f"# {line}")
        state = f"NOT RECORDED: {self.refusal}" if self.refusal else f"recording (limit {self.limit:g})"
        print(f"# load average {self.load_before[0]:.2f} {self.load_before[1]:.2f} {self.load_before[2]:.2f} at the "
              f"start: {state}", flush=True)  # fmt: skip

    @property
    def recorded(self) -> bool:
        return self.refusal is None

    def table(self, name: str, title: str, columns: list[dict[str, str]]) -> Table:
        table = Table(name, title, columns, self.recorded)
        self.tables.append(table)
        table.print_header()
        return table

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(text + ("" if self.recorded else "  (not recorded)"), flush=True)

    def peak_fraction(self, flops_per_s: float, precision: str = "fp32") -> float:
        return flops_per_s / self.machine.cpu.peak_flops(precision)

    def finish(self) -> bool:
        """Print the load after; write this section into the results file when recorded. True when written."""
        after = tuple(round(x, 2) for x in self.loadavg())
        print(f"# load average {after[0]:.2f} {after[1]:.2f} {after[2]:.2f} at the end")
        if not self.recorded or self.results is None:
            print(f"# {self.section}: not recorded ({self.refusal or 'no results file'})")
            return False
        section = {"script": f"benchmarks/{Path(sys.argv[0]).name}", "argv": self.argv, "date": self.date,
                   "machine": self.machine.to_dict(),
                   "load": {"before": list(self.load_before), "after": list(after), "limit": self.limit},
                   "tables": [t.to_dict() for t in self.tables], "notes": self.notes}  # fmt: skip
        write_section(self.results, self.section, section)
        print(f"# {self.section}: recorded in {self.results}")
        return True


def read_results(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"schema": SCHEMA, "sections": {}}
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: results schema {data.get('schema')!r}, this code writes {SCHEMA}")
    return data


def write_section(path: Path, name: str, section: dict[str, Any]) -> None:
    data = read_results(path)
    data["sections"][name] = section
    data["sections"] = dict(sorted(data["sections"].items()))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--results PATH`` (where recorded figures go) for every benchmark's command line."""
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help=f"results file the recorded figures go into (default {RESULTS.name} beside the scripts)")


__all__ = ["Bench", "Cpu", "LOAD_FACTOR", "Machine", "RESULTS", "Table", "add_arguments", "alternate", "cell", "col",
           "load_limit", "may_record", "parse_cpu", "probe", "read_cpu", "read_results", "training_flops_per_image",
           "write_section"]
