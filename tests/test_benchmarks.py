"""The benchmark infrastructure: the machine's peak from lscpu, the load rule, the results file, and BENCHMARKS.md's
tables generated from it (benchmarks/machine.py, tools/bench_tables.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import machine  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)

_spec = importlib.util.spec_from_file_location("bench_tables", ROOT / "tools" / "bench_tables.py")
bench_tables = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_tables)

# lscpu of the Zen 3 KVM guest of an earlier round (AVX2 + FMA, no AVX-512, no max clock) and /proc/cpuinfo's clock
ZEN3 = """Vendor ID:                AuthenticAMD
Model name:               AMD EPYC 7B13
CPU family:               25
Model:                    1
Thread(s) per core:       1
Core(s) per socket:       2
Socket(s):                1
Flags:                    fpu sse sse2 avx fma avx2 bmi2
Hypervisor vendor:        KVM
"""
ZEN3_CPUINFO = "processor\t: 0\ncpu MHz\t\t: 2450.000\n"
# an AVX-512 part with native bf16 and AMX, and a max clock in lscpu
SPR = """Vendor ID:                GenuineIntel
Model name:               Intel(R) Xeon(R) Platinum 8480+
CPU family:               6
Model:                    143
Core(s) per socket:       4
Socket(s):                2
CPU max MHz:              3800.0000
Flags:                    avx fma avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""


def test_avx2_peak_is_32_flop_per_cycle_at_the_cpuinfo_clock():
    cpu = machine.parse_cpu(ZEN3, ZEN3_CPUINFO, nproc=2)
    assert (cpu.cores, cpu.clock_ghz, cpu.fp32_flop_per_cycle) == (2, 2.45, 32)
    assert cpu.peak_fp32_gflops == pytest.approx(2 * 2.45 * 32)
    assert "cpuinfo" in cpu.clock_source
    assert cpu.bf16_flop_per_cycle is None and cpu.peak_bf16_gflops is None
    assert cpu.peak_flops("bf16") == cpu.peak_flops("fp32")  # no native bf16: measured against the fp32 peak
    assert cpu.isa == {"avx2": True, "fma": True, "avx512f": False, "avx512_bf16": False, "amx_bf16": False,
                       "amx_tile": False}  # fmt: skip


def test_avx512_peak_is_64_and_native_bf16_doubles_it():
    cpu = machine.parse_cpu(SPR, ZEN3_CPUINFO, nproc=16)
    assert (cpu.cores, cpu.nproc, cpu.clock_ghz) == (8, 16, 3.8)
    assert "lscpu" in cpu.clock_source  # the max clock wins over /proc/cpuinfo's
    assert (cpu.fp32_flop_per_cycle, cpu.bf16_flop_per_cycle) == (64, 128)
    assert cpu.peak_fp32_gflops == pytest.approx(8 * 3.8 * 64)
    assert cpu.peak_bf16_gflops == pytest.approx(2 * cpu.peak_fp32_gflops)
    assert "AMX" in cpu.peak_note


def test_load_rule_is_nproc_times_0_6():
    assert machine.may_record(1.2, 2) and not machine.may_record(1.21, 2)
    assert machine.may_record(9.6, 16) and not machine.may_record(9.7, 16)


def _machine() -> machine.Machine:
    return machine.Machine(machine.parse_cpu(ZEN3, ZEN3_CPUINFO, nproc=2), "2.x", 2, "3.11")


def test_a_loaded_machine_prints_figures_marked_not_recorded_and_writes_nothing(tmp_path, capsys):
    results = tmp_path / "results.json"
    bench = machine.Bench("demo", results=results, argv=[], loadavg=lambda: (1.5, 1.0, 0.5), machine=_machine())
    table = bench.table("t", "a table", [machine.col("ratio", "ratio", "{:.2f}x")])
    table.add(ratio=1.5)
    assert not bench.recorded and bench.finish() is False
    assert not results.exists()
    out = capsys.readouterr().out
    assert "| 1.50x |  (not recorded)" in out and "above the limit 1.2" in out


def test_an_idle_machine_records_its_section_and_keeps_the_others(tmp_path):
    results = tmp_path / "results.json"
    machine.write_section(results, "other", {"kept": True})
    loads = iter([(0.3, 0.2, 0.1), (0.9, 0.4, 0.2)])
    bench = machine.Bench("demo", results=results, argv=["--x"], loadavg=lambda: next(loads), machine=_machine())
    bench.table("t", "a table", [machine.col("ratio", "ratio", "{:.2f}x")]).add(ratio=1.5)
    bench.note("a note")
    assert bench.finish() is True
    data = json.loads(results.read_text())
    assert data["schema"] == machine.SCHEMA and data["sections"]["other"] == {"kept": True}
    section = data["sections"]["demo"]
    assert section["load"] == {"before": [0.3, 0.2, 0.1], "after": [0.9, 0.4, 0.2], "limit": 1.2}
    assert section["machine"]["peak_fp32_gflops"] == pytest.approx(156.8) and section["machine"]["threads"] == 2
    assert section["tables"][0]["rows"] == [{"ratio": 1.5}] and section["notes"] == ["a note"]


def test_a_trial_run_is_never_recorded(tmp_path):
    bench = machine.Bench("demo", results=tmp_path / "r.json", argv=[], trial="--quick",
                          loadavg=lambda: (0.0, 0.0, 0.0), machine=_machine())  # fmt: skip
    assert not bench.recorded and bench.finish() is False and not (tmp_path / "r.json").exists()


def test_a_row_missing_a_column_is_refused():
    table = machine.Table("t", "", [machine.col("a", "A"), machine.col("b", "B")], recorded=True)
    with pytest.raises(KeyError, match="without b"):
        table.add(a=1)


def test_alternate_rotates_the_order_each_round():
    calls: list[str] = []
    times = machine.alternate({name: (lambda n=name: calls.append(n)) for name in "abc"}, rounds=3, warm=1)
    assert calls == list("abc" "abc" "bca" "cab")  # warm-up, then rounds 1-3
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}


def _section() -> dict:
    return {"script": "benchmarks/bench_x.py", "argv": ["--rounds", "5"], "date": "2026-12-03 10:00 UTC",
            "machine": _machine().to_dict(), "load": {"before": [0.4, 0.3, 0.2], "after": [1.5, 1, 1], "limit": 1.2},
            "tables": [{"name": "t", "title": "steps", "columns": [machine.col("m", "model"),
                                                                   machine.col("r", "vs eager", "{:.2f}x")],
                        "rows": [{"m": "resnet20", "r": 1.567}, {"m": "a|b", "r": None}]}],
            "notes": ["bf16 is 2x."]}  # fmt: skip


def test_tables_are_generated_between_markers_and_the_prose_stays():
    doc = ("# Benchmarks\n\nProse before.\n\n<!-- bench:x -->\nold figure 99x\n<!-- /bench:x -->\n\nProse between.\n\n"
           "<!-- bench:y -->\nanother old figure\n<!-- /bench:y -->\nProse after.\n")  # fmt: skip
    text, filled, orphans = bench_tables.regenerate(doc, {"schema": 1, "sections": {"x": _section(), "z": {}}})
    assert filled == ["x"] and orphans == ["z"]
    assert "old figure" not in text
    for prose in ("Prose before.", "Prose between.", "Prose after."):
        assert prose in text
    assert "| resnet20 | 1.57x |" in text and "| a\\|b | - |" in text and "- bf16 is 2x." in text
    assert "`python benchmarks/bench_x.py --rounds 5`" in text and "AMD EPYC 7B13" in text
    assert "peak fp32 156.8 GFLOP/s, no native bf16" in text and "2.45 GHz" in text
    assert "0.40 at the start, 1.50 at the end (the benchmark's own 2 threads count in it) (limit 1.2)" in text
    assert "<!-- bench:y -->\n*Not measured under the load limit yet" in text
    assert bench_tables.regenerate(text, {"schema": 1, "sections": {"x": _section()}})[0] == text  # idempotent


def test_check_mode_fails_on_a_stale_document(tmp_path):
    doc, results = tmp_path / "B.md", tmp_path / "r.json"
    doc.write_text("<!-- bench:x -->\nstale\n<!-- /bench:x -->\n")
    results.write_text(json.dumps({"schema": 1, "sections": {"x": _section()}}))
    args = ["--doc", str(doc), "--results", str(results)]
    assert bench_tables.main([*args, "--check"]) == 1
    assert bench_tables.main(args) == 0
    assert bench_tables.main([*args, "--check"]) == 0


def test_benchmarks_md_is_what_the_results_file_gives():
    """BENCHMARKS.md's measured tables are generated (`make bench` ends with tools/bench_tables.py), never edited."""
    assert bench_tables.main(["--check"]) == 0
    assert len(bench_tables.block_names(bench_tables.DOC.read_text())) >= 7
