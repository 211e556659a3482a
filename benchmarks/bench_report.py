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

import torch

import cnnzoo
from cnnzoo.html_report import write_run_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, help="a run folder (default: train one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, help="zoo cache (default: ~/.cache/cnnzoo)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
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
        print(f"write_run_report: first call {times[0]:.2f} s (imports matplotlib), warm median {warm:.2f} s "
              f"= {warm / epoch_s:.1%} of one of this run's epochs ({epoch_s:.1f} s)")  # fmt: skip
        for label in ("zoo page (cache cold or warm)", "zoo page (cache warm)"):
            t0 = time.perf_counter()
            cnnzoo.report(out=Path(tmp) / "zoo.html", cache_dir=args.cache_dir)
            print(f"{label}: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
