"""onnxruntime (CPU) inference against PyTorch eager, on the same exported network, in the same process.

For each (model, batch): ``cnnzoo.export`` writes the ONNX file (random init, the paper's input side, dynamic
batch) and verifies it; then PyTorch eager (``torch.inference_mode``, eval mode) and onnxruntime (CPU provider,
default graph optimisations) run the same random batch, alternated ``--rounds`` times after ``--warmup`` untimed
calls each (warm vs warm). Reported: median images/s of each and the ratio onnxruntime / PyTorch. Both use the
same number of threads (``--threads``, default: ``torch.get_num_threads()``).

Run: ``.venv/bin/python benchmarks/bench_export.py`` (needs ``pip install 'cnnzoo[export]'``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import cnnzoo
from cnnzoo.exporting import OnnxNet
from machine import Bench, add_arguments, col

CASES = (("resnet20", 1), ("resnet20", 128), ("resnet50_tv", 1), ("resnet50_tv", 32))


def _timed(fn, x, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--cases", nargs="*", help="model:batch pairs (default: the four of BENCHMARKS.md)")
    add_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [(c.split(":")[0], int(c.split(":")[1])) for c in args.cases] if args.cases else CASES
    bench = Bench("export", results=args.results)
    table = bench.table("inference", f"PyTorch eager against onnxruntime (CPU provider), {args.threads} threads each, "
                        f"{args.warmup} warm-up calls each, then {args.rounds} alternated rounds, medians", [
                            col("model", "model"), col("input", "input"), col("batch", "batch"),
                            col("torch_ips", "PyTorch eager img/s", "{:,.1f}"),
                            col("ort_ips", "onnxruntime img/s", "{:,.1f}"),
                            col("ratio", "onnxruntime / PyTorch", "{:.2f}x")])  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        exported: dict[str, tuple[Path, torch.nn.Module]] = {}
        for name, batch in cases:
            if name not in exported:
                r = cnnzoo.export(name, out=Path(tmp) / f"{name}.onnx")
                exported[name] = (r.path, cnnzoo.create_model(name).eval())
                print(f"  ({name}: exported and verified, max rel diff {r.max_rel_diff:.1e})")
            path, _ = exported[name]
            ort = OnnxNet(path, threads=args.threads)
            net = exported[name][1]
            side = cnnzoo.model_info(name).input_size[1]
            x = torch.randn(batch, 3, side, side)
            xn = x.numpy()

            def eager(inp):
                with torch.inference_mode():
                    return net(inp)

            for _ in range(args.warmup):
                eager(x), ort.run(xn)
            t_torch, t_ort = [], []
            for _ in range(args.rounds):  # alternated, so background load hits both alike
                t_torch += _timed(eager, x, 1)
                t_ort += _timed(ort.run, xn, 1)
            a, b = batch / statistics.median(t_torch), batch / statistics.median(t_ort)
            table.add(model=name, input=f"{side}x{side}", batch=batch, torch_ips=a, ort_ips=b, ratio=b / a)
    bench.finish()


if __name__ == "__main__":
    main()
