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

Timings are wall-clock medians over ``--repeat`` runs; the machine's load is printed, since a shared machine makes
every number noisy.
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


def _median_time(fn, repeat: int) -> float:
    return _median_times(fn, repeat)[0]


def _median_times(fn, repeat: int) -> tuple[float, float]:
    """Median wall-clock and median process-CPU seconds of ``fn()`` after one untimed warm-up call (CPU time shows
    how much is contention)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


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
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads (torchinfo's real forward); 1 on an oversubscribed machine")
    parser.add_argument("--vgg4096", action="store_true", help=argparse.SUPPRESS)  # the child-process mode
    args = parser.parse_args()
    if args.repeat < 5:
        parser.error("--repeat must be >= 5 (medians of at least five warm calls)")
    if args.vgg4096:
        print(json.dumps(_vgg16_4096()))
        return 0

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    analyze("alexnet")  # warm-up

    # 1. every registered model at its native input ------------------------------------------------------------
    names = sorted({n for pattern in args.pattern.split(",") for n in cnnzoo.list_models(pattern.strip())})
    rows = []
    for name in [] if args.skip_zoo else names:
        with torch.device("meta"):
            model = cnnzoo.create_model(name)
        info = cnnzoo.model_info(name)
        seconds, cpu = _median_times(lambda: analyze(model, info.input_size), args.repeat)
        plain = _median_time(lambda: _meta_forward(model, info.input_size), args.repeat)
        rows.append((name, seconds, cpu))
        size = "x".join(map(str, info.input_size))
        print(f"  {name:<22} {size:>10}  {seconds * 1e3:8.1f} ms  (CPU {cpu * 1e3:.1f} ms; "
              f"plain meta forward {plain * 1e3:.1f} ms)", flush=True)
    if rows:
        times = [s for _, s, _ in rows]
        median_ms = statistics.median(times) * 1e3
        median_cpu_ms = statistics.median(c for _, _, c in rows) * 1e3
        print(f"\n[1] analyze() over {len(rows)} registered models at native input: median {median_ms:.1f} ms wall "
              f"(process CPU {median_cpu_ms:.1f} ms; min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f} ms: "
              f"{max(rows, key=lambda r: r[1])[0]}); target <= 20 ms: {'met' if median_ms <= 20 else 'NOT met'}")

    # 2. against torchinfo on the torchvision-compatible models ----------------------------------------------------
    if not args.skip_torchinfo:
        import torchinfo

        ratios = []
        print("\n  model                  torchinfo      cnnzoo   speed-up   (wall-clock medians; process CPU)")
        for name in names:
            if not cnnzoo.model_info(name).torchvision:
                continue
            model = cnnzoo.create_model(name).eval()
            size = (1, 3, 224, 224)
            ti, ti_cpu = _median_times(lambda: torchinfo.summary(model, input_size=size, verbose=0, device="cpu"),
                                       args.repeat)  # fmt: skip
            ours, ours_cpu = _median_times(lambda: analyze(model, size[1:]), args.repeat)
            ratios.append((name, ti / ours))
            print(f"  {name:<22} {ti * 1e3:8.0f} ms {ours * 1e3:8.1f} ms {ti / ours:8.1f}x   (process CPU: "
                  f"{ti_cpu * 1e3:.0f} ms, {ours_cpu * 1e3:.1f} ms, {ti_cpu / ours_cpu:.1f}x)", flush=True)
            del model
            gc.collect()
        if ratios:
            geomean = math.exp(sum(math.log(r) for _, r in ratios) / len(ratios))
            low, high = min(ratios, key=lambda r: r[1]), max(ratios, key=lambda r: r[1])
            below = [n for n, r in ratios if r < 20]
            print(f"\n[2] speed-up over a warm torchinfo.summary (real CPU forward), {len(ratios)} "
                  f"torchvision-compatible models at 3x224x224: geometric mean {geomean:.1f}x (min {low[1]:.1f}x "
                  f"{low[0]}, max {high[1]:.1f}x {high[0]}); target >= 20x on every model: "
                  f"{'met' if not below else 'NOT met (' + ', '.join(below) + ')'}")  # fmt: skip

    # 3. VGG16 at 4096x4096, fresh process -------------------------------------------------------------------------
    child = subprocess.run([sys.executable, __file__, "--vgg4096"], capture_output=True, text=True, check=True)
    big = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"\n[3] VGG16 at 3x4096x4096: {big['seconds'] * 1e3:.0f} ms, peak RSS growth "
          f"{big['peak_rss_growth_mib']:.1f} MiB, RSS growth {big['rss_growth_mib']:.1f} MiB "
          f"(process RSS {big['rss_mib']:.0f} MiB before) "
          f"({big['gmacs']:,.1f} GMACs, {big['activation_gib']:.1f} GiB of activations, training memory "
          f"{big['train_memory_gib']:.1f} GiB at batch 1); target < 200 ms and < 200 MB: "
          f"{'met' if big['seconds'] < 0.2 and big['peak_rss_growth_mib'] < 190 else 'NOT met'}")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
