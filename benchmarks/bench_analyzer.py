"""Benchmark of ``cnnzoo.analyze`` (issue 4): speed over the zoo, against torchinfo, and at 4096x4096.

    .venv/bin/python benchmarks/bench_analyzer.py [--repeat 5] [--pattern 'resnet*'] [--skip-torchinfo]

1. Every registered model at its native input size: median wall time of ``analyze(model)`` (model built beforehand
   on the meta device; the analysis copies it, so this is the cost a user sees for a model in hand), both passes
   (eval statistics and the training-memory pass). Target: median <= 20 ms.
   Beside it, the model's own eval-mode forward on the meta device with no analyzer (shapes only, stock meta
   kernels): the least any shape-propagating tool pays to run the model's Python, for scale.
2. The torchvision-compatible models at 3x224x224: ``torchinfo.summary`` of the same CPU model and input (its
   normal use: a real forward pass) against ``analyze`` of that model, in the same run, per model; both sides warm
   (one untimed call each first: torchinfo's first call carries one-time start-up costs, oneDNN primitive creation
   among them), medians of ``--repeat`` (>= 5) calls each. Target: >= 20x on every model. torchinfo is a
   benchmark-only dependency (``pip install -e '.[bench]'``).
3. VGG16 at 3x4096x4096 in a fresh process: wall time and peak resident-memory growth. Target: < 200 ms, < 200 MB.

Timings are wall-clock medians over ``--repeat`` runs, the two sides of each comparison alternated call by call
after one untimed warm call each (benchmarks/machine.py checks the machine and records the figures).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

import cnnzoo
from cnnzoo.analysis import analyze
from machine import Bench, add_arguments, col


def _alternated_times(fns, repeat: int) -> list[tuple[float, float]]:
    """Per function: median wall-clock and median process-CPU seconds (CPU time shows how much is contention),
    after one untimed warm call each, the functions called in turn ``repeat`` times."""
    for fn in fns:
        fn()
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[i].append(time.perf_counter() - start)
            cpu[i].append(time.process_time() - start_cpu)
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(wall, cpu)]


def _meta_forward(model: torch.nn.Module, size: tuple[int, ...]) -> None:
    """The model's own eval-mode forward on the meta device, no analyzer: the baseline cost of running its Python."""
    model.eval()
    with torch.no_grad():
        model(torch.empty((1, *size), device="meta"))


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _vgg16_4096() -> dict[str, float]:
    """Run in a fresh process so the peak-RSS growth is this analysis's alone."""
    analyze("vgg16")  # warm-up at 224: imports and first-call costs
    before, rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, _rss_mib()
    start = time.perf_counter()
    report = analyze("vgg16", (3, 4096, 4096))
    elapsed = time.perf_counter() - start
    growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return {"seconds": elapsed, "peak_rss_growth_mib": growth_kib / 1024, "rss_growth_mib": _rss_mib() - rss_before,
            "rss_mib": rss_before, "gmacs": report.totals.macs / 1e9,
            "activation_gib": report.totals.activation_bytes / 2**30,
            "train_memory_gib": (report.totals.train_memory_bytes or 0) / 2**30}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pattern", default="*", help="fnmatch pattern(s), comma-separated")
    parser.add_argument("--skip-zoo", action="store_true", help="skip [1], the whole registry at native input")
    parser.add_argument("--skip-torchinfo", action="store_true")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (torchinfo's forward)")
    parser.add_argument("--vgg4096", action="store_true", help=argparse.SUPPRESS)  # the child-process mode
    add_arguments(parser)
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be >= 5 (medians of at least five warm calls)")
    if args.vgg4096:
        print(json.dumps(_vgg16_4096()))
        return 0

    torch.set_num_threads(args.threads)
    bench = Bench("analyzer", results=args.results)
    analyze("alexnet")  # warm-up

    # 1. every registered model at its native input ------------------------------------------------------------
    names = sorted({n for pattern in args.pattern.split(",") for n in cnnzoo.list_models(pattern.strip())})
    rows = []
    for name in [] if args.skip_zoo else names:
        with torch.device("meta"):
            model = cnnzoo.create_model(name)
        info = cnnzoo.model_info(name)
        (seconds, cpu), (plain, _) = _alternated_times([lambda: analyze(model, info.input_size),
                                                        lambda: _meta_forward(model, info.input_size)], args.repeat)
        rows.append((name, seconds, cpu, plain))
        size = "x".join(map(str, info.input_size))
        print(f"  {name:<22} {size:>10}  {seconds * 1e3:8.1f} ms  (CPU {cpu * 1e3:.1f} ms; "
              f"plain meta forward {plain * 1e3:.1f} ms)", flush=True)
    if rows:
        zoo = bench.table("zoo", "[1] `analyze()` (both passes) over the registered models at their native input, "
                          f"medians of {args.repeat} warm calls each", [
                              col("models", "models"), col("median_ms", "median wall (ms)", "{:.1f}"),
                              col("median_cpu_ms", "median process CPU (ms)", "{:.1f}"),
                              col("min_ms", "min (ms)", "{:.1f}"), col("max_ms", "max (ms)", "{:.1f}"),
                              col("slowest", "slowest"), col("faster_than_meta", "faster than a plain meta forward"),
                              col("met", "median <= 20 ms")])  # fmt: skip
        times = [r[1] for r in rows]
        median_ms = statistics.median(times) * 1e3
        zoo.add(models=len(rows), median_ms=median_ms, median_cpu_ms=statistics.median(r[2] for r in rows) * 1e3,
                min_ms=min(times) * 1e3, max_ms=max(times) * 1e3, slowest=max(rows, key=lambda r: r[1])[0],
                faster_than_meta=f"{sum(r[1] < r[3] for r in rows)} of {len(rows)}", met=median_ms <= 20)

    # 2. against torchinfo on the torchvision-compatible models ----------------------------------------------------
    if not args.skip_torchinfo:
        import torchinfo

        table = bench.table("torchinfo", "[2] against a warm `torchinfo.summary` (a real CPU forward) at 3x224x224, "
                            f"alternated, medians of {args.repeat} calls", [
                                col("model", "model"), col("torchinfo_ms", "torchinfo wall (ms)", "{:.0f}"),
                                col("analyze_ms", "analyze wall (ms)", "{:.1f}"),
                                col("ratio", "ratio (wall)", "{:.1f}x"),
                                col("torchinfo_cpu_ms", "torchinfo CPU (ms)", "{:.0f}"),
                                col("analyze_cpu_ms", "analyze CPU (ms)", "{:.1f}"),
                                col("cpu_ratio", "ratio (CPU)", "{:.1f}x")])  # fmt: skip
        ratios = []
        for name in names:
            if not cnnzoo.model_info(name).torchvision:
                continue
            model = cnnzoo.create_model(name).eval()
            size = (1, 3, 224, 224)
            (ti, ti_cpu), (ours, ours_cpu) = _alternated_times([
                lambda: torchinfo.summary(model, input_size=size, verbose=0, device="cpu"),
                lambda: analyze(model, size[1:])], args.repeat)  # fmt: skip
            ratios.append((name, ti / ours))
            table.add(model=name, torchinfo_ms=ti * 1e3, analyze_ms=ours * 1e3, ratio=ti / ours,
                      torchinfo_cpu_ms=ti_cpu * 1e3, analyze_cpu_ms=ours_cpu * 1e3, cpu_ratio=ti_cpu / ours_cpu)
            del model
            gc.collect()
        if ratios:
            geomean = math.exp(sum(math.log(r) for _, r in ratios) / len(ratios))
            below = [n for n, r in ratios if r < 20]
            bench.note(f"Against torchinfo: geometric mean {geomean:.1f}x (wall) over {len(ratios)} models; >= 20x on "
                       f"every model: {'met' if not below else 'not met (' + ', '.join(below) + ')'}.")

    # 3. VGG16 at 4096x4096, fresh process -------------------------------------------------------------------------
    child = subprocess.run([sys.executable, __file__, "--vgg4096"], capture_output=True, text=True, check=True)
    big = json.loads(child.stdout.strip().splitlines()[-1])
    vgg = bench.table("vgg4096", "[3] VGG16 at 3x4096x4096, batch 1, in a fresh process", [
        col("ms", "wall (ms)", "{:.0f}"), col("peak_rss_mib", "peak RSS growth (MiB)", "{:.1f}"),
        col("gmacs", "GMACs", "{:,.1f}"), col("activation_gib", "activations (GiB)", "{:.1f}"),
        col("train_memory_gib", "training memory (GiB)", "{:.1f}"), col("met", "< 200 ms and < 200 MB")])  # fmt: skip
    vgg.add(ms=big["seconds"] * 1e3, peak_rss_mib=big["peak_rss_growth_mib"], gmacs=big["gmacs"],
            activation_gib=big["activation_gib"], train_memory_gib=big["train_memory_gib"],
            met=big["seconds"] < 0.2 and big["peak_rss_growth_mib"] < 190)
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
