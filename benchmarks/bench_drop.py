"""Training-step time saved by skipping dropped work (CPU): stochastic depth and FractalNet drop-path.

1. ``resnet110_sd`` (Huang et al. 2016, p_L = 0.5: a dropped block is not run) against ``resnet110`` (every block
   runs), same random CIFAR-size batch. Target: <= 0.80x per epoch; expected ~0.75x, since sum p_l = 0.75 L - 0.25
   of the L = 54 blocks run on average (Huang et al. report about 25% less training time).
2. ``fractalnet20`` with drop-path (Larsson et al. 2017 §3.1: half the mini-batches run one column, the rest drop
   join inputs locally) against ``drop_path=False`` (every path runs). Target: clearly cheaper.

Each step is SGD (momentum 0.9, weight decay 1e-4) on cross-entropy. Both sides get ``--warm`` untimed steps first,
then the two sides alternate step by step (so a load change on a shared machine hits both). A drop step's cost
depends on its draw, so the per-epoch ratio is the ratio of mean step times; the medians are shown as well, and the
ratio of process CPU time (robust to other processes on a shared machine when ``--threads 1``). Beside
it, the ratio of executed multiply-adds of the same steps, counted in forward hooks on every conv and linear layer
that actually runs (output elements x input channels per group x kernel area), forward only (the backward of what
runs costs about twice its forward on both sides).

Each side's training rate is also given as a fraction of the machine's fp32 peak: its executed forward MACs x 2
x 3 (forward and backward) per second of step (benchmarks/machine.py).

Run: ``.venv/bin/python benchmarks/bench_drop.py`` (several minutes on a 2-core CPU); ``--quick`` for fewer steps.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from machine import Bench, Table, add_arguments, col, training_flops_per_image


class MacCounter:
    """Multiply-adds of the conv and linear layers that run, counted from their outputs in forward hooks."""

    def __init__(self, model: nn.Module) -> None:
        self.macs = 0
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.register_forward_hook(self._count)

    def _count(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_output = module.in_channels // module.groups * kh * kw
        else:
            per_output = module.in_features
        self.macs += output.numel() * per_output


class Side:
    """One model, its optimizer and its batch; `step` returns (seconds, executed forward MACs)."""

    def __init__(self, name: str, batch: int, **overrides) -> None:
        self.model = cnnzoo.create_model(name, **overrides).train()
        self.counter = MacCounter(self.model)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(batch, 3, 32, 32, generator=generator)
        self.y = torch.randint(10, (batch,), generator=generator)

    def step(self) -> tuple[float, float, int]:
        self.counter.macs = 0
        start, cpu = time.perf_counter(), time.process_time()
        self.opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(self.x), self.y).backward()
        self.opt.step()
        return time.perf_counter() - start, time.process_time() - cpu, self.counter.macs


def compare(table: Table, bench: Bench, label: str, base: Side, drop: Side, *, warm: int, steps: int) -> None:
    for _ in range(warm):
        base.step()
        drop.step()
    base_runs, drop_runs = [], []
    for _ in range(steps):
        base_runs.append(base.step())
        drop_runs.append(drop.step())
    (base_t, base_cpu, base_macs), (drop_t, drop_cpu, drop_macs) = zip(*base_runs), zip(*drop_runs)
    table.add(comparison=label, base_median_s=statistics.median(base_t), drop_median_s=statistics.median(drop_t),
              time_ratio_mean=statistics.fmean(drop_t) / statistics.fmean(base_t),
              time_ratio_median=statistics.median(drop_t) / statistics.median(base_t),
              cpu_ratio_mean=sum(drop_cpu) / sum(base_cpu), macs_ratio=sum(drop_macs) / sum(base_macs),
              base_peak=bench.peak_fraction(training_flops_per_image(sum(base_macs)) / sum(base_t)),
              drop_peak=bench.peak_fraction(training_flops_per_image(sum(drop_macs)) / sum(drop_t)))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run, noisier ratios)")
    parser.add_argument("--batch", type=int, default=128, help="ResNet-110 batch (the paper's 128)")
    parser.add_argument("--fractal-batch", type=int, default=16, help="FractalNet batch (845M MACs per image)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drop draws")
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warm, steps, fractal_steps = (1, 2, 4) if args.quick else (2, 8, 16)
    bench = Bench("drop", results=args.results, trial="--quick" if args.quick else None)
    torch.manual_seed(args.seed)
    table = bench.table("steps", f"SGD steps on a random 3x32x32 batch, {warm} warm-up steps per side, then {steps} "
                        f"(ResNet) / {fractal_steps} (FractalNet) steps alternated step by step", [
                            col("comparison", "comparison"), col("base_median_s", "baseline median step (s)", "{:.2f}"),
                            col("drop_median_s", "drop median step (s)", "{:.2f}"),
                            col("time_ratio_mean", "wall ratio (means)", "{:.3f}"),
                            col("time_ratio_median", "wall ratio (medians)", "{:.3f}"),
                            col("cpu_ratio_mean", "process CPU ratio", "{:.3f}"),
                            col("macs_ratio", "executed MACs ratio", "{:.3f}"),
                            col("base_peak", "baseline of fp32 peak", "{:.1%}"),
                            col("drop_peak", "drop of fp32 peak", "{:.1%}")])  # fmt: skip
    compare(table, bench, f"resnet110_sd / resnet110, batch {args.batch}", Side("resnet110", args.batch),
            Side("resnet110_sd", args.batch), warm=warm, steps=steps)
    compare(table, bench, f"fractalnet20 drop-path / no drop-path, batch {args.fractal_batch}",
            Side("fractalnet20", args.fractal_batch, drop_path=False),
            Side("fractalnet20", args.fractal_batch), warm=warm, steps=fractal_steps)
    bench.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
