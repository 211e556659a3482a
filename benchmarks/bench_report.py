"""What ``write_run_report`` adds to a run, and how long the zoo page takes from a warm cache (CPU).

1. The run page: a ResNet-20 digits run (given with ``--run``, or trained here for 2 epochs at 16 px, not timed),
   ``write_run_report`` timed ``--rounds`` times in this process (the first call includes importing matplotlib),
   against the run's own mean epoch time from its metrics.jsonl as the baseline. Goal: under 1 s warm.
2. The zoo page: ``cnnzoo.report()`` with the analyzer numbers already cached (the first call fills the cache and
   is timed separately). Goal: within ~30 s.

Run: ``.venv/bin/python benchmarks/bench_report.py [--run runs/r20]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import cnnzoo
from cnnzoo.html_report import write_run_report
from machine import Bench, add_arguments, col


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, help="a run folder (default: train one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, help="zoo cache (default: ~/.cache/cnnzoo)")
    add_arguments(parser)
    args = parser.parse_args()
    bench = Bench("report", results=args.results)
    table = bench.table("report", "what a report costs (wall seconds)", [
        col("what", "what"), col("seconds", "time (s)", "{:.2f}"), col("vs_epoch", "vs one epoch of the run", "{:.1%}"),
        col("goal", "goal")])  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "r20"
            cnnzoo.train("resnet20", data="digits", recipe="quick", epochs=2, image_size=16, out=run,
                         checkpoints=False, progress=False)  # fmt: skip
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        epoch_s = statistics.mean(r["seconds"] for r in rows)
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            write_run_report(run)
            times.append(time.perf_counter() - t0)
        warm = statistics.median(times[1:]) if len(times) > 1 else times[0]
        table.add(what="write_run_report, first call (imports matplotlib)", seconds=times[0],
                  vs_epoch=times[0] / epoch_s, goal="-")
        table.add(what=f"write_run_report, warm (median of {len(times) - 1})", seconds=warm, vs_epoch=warm / epoch_s,
                  goal="< 1 s")
        bench.note(f"One epoch of the run: {epoch_s:.1f} s (resnet20, digits, 16 px, from its metrics.jsonl).")
        for label, goal in (("zoo page (cache as found)", "-"), ("zoo page (cache warm)", "within ~30 s")):
            t0 = time.perf_counter()
            cnnzoo.report(out=Path(tmp) / "zoo.html", cache_dir=args.cache_dir)
            table.add(what=label, seconds=time.perf_counter() - t0, vs_epoch=None, goal=goal)
    bench.finish()


if __name__ == "__main__":
    main()
