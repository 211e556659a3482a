"""The CPU training step at the machine's pace: eager NCHW against channels-last, ``torch.compile`` and threads.

    .venv/bin/python benchmarks/bench_cpu_train.py [--models resnet20,resnet56,densenet40_k12] [--rounds 5]
        [--steps 3] [--batch 128] [--compile-budget 600] [--no-compile]

One training step = ``zero_grad``, forward, cross-entropy, backward, SGD (momentum 0.9, weight decay 1e-4, as He et
al. 2016 §4.2 train the CIFAR ResNets) on a fixed synthetic batch at the model's native input (3x32x32). Variants,
all in this one process:

* ``eager``: NCHW, ``torch.get_num_threads()`` = all cores (the baseline: every ratio is against it);
* ``eager-1t``: the same with one thread;
* ``channels-last``: model and batch in ``torch.channels_last``;
* ``compile``: ``torch.compile(model)`` (inductor, CPU; the optimizer step stays eager). Its first step (the
  compilation of forward and backward) is timed separately; compilation stops being attempted for further models
  once ``--compile-budget`` seconds have been spent on it.

Warm first (one untimed step per variant), then ``--rounds`` rounds that alternate the variants (the machine is
shared: alternating spreads the other users' load over all of them), ``--steps`` timed steps per variant and round;
per variant the median over all timed steps. FLOP rate: MACs x 2 (multiply-add) x 3 (forward, and backward's two
products: input and weight gradients) per image, MACs from ``cnnzoo.analyze``, against the peak computed from
``lscpu`` (cores x clock x FP32 FLOPs per cycle of the widest vector FMA unit; the assumption is printed).

Resume safety: per variant, from one saved model + optimizer state, a step is run, the state is loaded back and the
same step runs again; "bit-exact" means the parameters after both are identical (what an exact resume needs).
The largest parameter difference to eager NCHW after one step from the same state is printed beside it.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo


@dataclass
class Variant:
    name: str
    threads: int
    channels_last: bool = False
    compiled: bool = False


def peak_flops() -> tuple[float, str]:
    """Cores x clock x FP32 FLOP/cycle of the widest FMA unit, from lscpu (the assumption returned as text)."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    cores = int(fields.get("Core(s) per socket", "1")) * int(fields.get("Socket(s)", "1"))
    mhz = float(fields.get("CPU max MHz", 0) or 0)
    if not mhz:
        with open("/proc/cpuinfo") as f:
            mhz = float(re.search(r"cpu MHz\s*:\s*([\d.]+)", f.read()).group(1))
    flags = set(fields.get("Flags", "").split())
    if "avx512f" in flags:
        lanes, unit = 16, "AVX-512"
    elif "avx2" in flags or "avx" in flags:
        lanes, unit = 8, "AVX2" if "avx2" in flags else "AVX"
    else:
        lanes, unit = 4, "SSE"
    fma = "fma" in flags or "avx512f" in flags
    per_cycle = lanes * (2 if fma else 1) * 2  # lanes x (multiply + add) x two vector FMA pipes per core (assumed)
    peak = cores * mhz * 1e6 * per_cycle
    note = (f"{fields.get('Model name', '?')}: {cores} cores x {mhz / 1e3:.2f} GHz x {per_cycle} FP32 FLOP/cycle "
            f"({unit}{' FMA' if fma else ''}, {lanes} lanes x 2 x 2 pipes) = {peak / 1e9:.1f} GFLOP/s")  # fmt: skip
    return peak, note


def make_step(model: nn.Module, opt: torch.optim.Optimizer) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    return step


class Runner:
    """One variant: its own copy of the model and optimizer, its batch in its layout, its step function."""

    def __init__(self, variant: Variant, base: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        self.variant = variant
        fmt = torch.channels_last if variant.channels_last else torch.contiguous_format
        self.model = copy.deepcopy(base).to(memory_format=fmt).train()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        self.x, self.y = x.contiguous(memory_format=fmt), y
        module = torch.compile(self.model) if variant.compiled else self.model
        self.step = make_step(module, self.opt)
        self.times: list[float] = []
        self.first_step_s = 0.0

    def run(self, steps: int, record: bool = True) -> None:
        torch.set_num_threads(self.variant.threads)
        for _ in range(steps):
            start = time.perf_counter()
            loss = self.step(self.x, self.y)
            elapsed = time.perf_counter() - start
            if not torch.isfinite(loss):
                raise RuntimeError(f"{self.variant.name}: non-finite loss")
            if record:
                self.times.append(elapsed)

    def state(self) -> tuple[dict, dict]:
        return copy.deepcopy(self.model.state_dict()), copy.deepcopy(self.opt.state_dict())

    def load(self, state: tuple[dict, dict]) -> None:
        self.model.load_state_dict(state[0])
        self.opt.load_state_dict(state[1])

    def params(self) -> list[torch.Tensor]:
        return [p.detach().clone().contiguous() for p in self.model.parameters()]


def resume_check(runner: Runner, start: tuple[dict, dict]) -> tuple[bool, list[torch.Tensor]]:
    """(bit-exact on reload, the parameters after one step from ``start``): the step from a loaded state, twice."""
    torch.set_num_threads(runner.variant.threads)
    runner.load(start)
    runner.step(runner.x, runner.y)
    first = runner.params()
    runner.load(start)
    runner.step(runner.x, runner.y)
    return all(torch.equal(a, b) for a, b in zip(first, runner.params())), first


def bench_model(name: str, args: argparse.Namespace, peak: float, compile_spent: list[float]) -> list[str]:
    info = cnnzoo.model_info(name)
    macs = cnnzoo.analyze(name, training=False).totals.macs  # per image
    flop_per_step = macs * 2 * 3 * args.batch
    cores = os.cpu_count() or 1
    torch.manual_seed(0)
    base = cnnzoo.create_model(name)
    x = torch.randn(args.batch, *info.input_size)
    y = torch.randint(0, info.num_classes, (args.batch,))
    variants = [Variant("eager", cores), Variant("eager-1t", 1), Variant("channels-last", cores, channels_last=True)]
    if not args.no_compile:
        if compile_spent[0] < args.compile_budget:
            variants.append(Variant("compile", cores, compiled=True))
        else:
            print(f"  {name}: compile skipped (compile budget of {args.compile_budget:.0f} s spent)")
    start_state = None
    runners: list[Runner] = []
    for v in variants:
        r = Runner(v, base, x, y)
        if start_state is None:
            start_state = r.state()
        torch.set_num_threads(v.threads)
        t0 = time.perf_counter()
        r.run(1, record=False)  # the first step: compilation for `compile`, oneDNN primitive creation for the rest
        r.first_step_s = time.perf_counter() - t0
        if v.compiled:
            compile_spent[0] += r.first_step_s
        print(f"  {name} {v.name}: first step {r.first_step_s:.1f} s", flush=True)
        runners.append(r)
    for i in range(args.rounds):
        for r in runners:
            r.run(args.steps)
        print(f"  {name} round {i + 1}: " + ", ".join(f"{r.variant.name} {r.times[-1] * 1e3:.0f} ms" for r in runners),
              flush=True)  # fmt: skip
    checks = []
    reference = None
    for r in runners:
        exact, params = resume_check(r, start_state)
        reference = params if reference is None else reference
        checks.append((exact, max(float((a - b).abs().max()) for a, b in zip(params, reference))))
    baseline = statistics.median(runners[0].times)
    lines = []
    for r, (exact, diff) in zip(runners, checks):
        med = statistics.median(r.times)
        rate = flop_per_step / med
        lines.append(f"| {name} | {r.variant.name} | {r.variant.threads} | {med * 1e3:.0f} | {baseline / med:.2f}x | "
                     f"{args.batch / med:.0f} | {rate / 1e9:.1f} ({100 * rate / peak:.1f}%) | "
                     f"{r.first_step_s:.1f} | {'yes' if exact else 'NO'} | {diff:.1e} |")  # fmt: skip
        print(lines[-1], flush=True)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet20,resnet56,densenet40_k12")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--compile-budget", type=float, default=600.0, help="seconds of compilation, all models")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    peak, note = peak_flops()
    print(f"torch {torch.__version__}, python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"peak: {note}")
    print(f"batch {args.batch}, {args.rounds} rounds x {args.steps} timed steps per variant, medians\n")
    print("| model | variant | threads | step (ms) | speed-up vs eager | img/s | GFLOP/s (of peak) | first step (s) "
          "| resume bit-exact | max diff vs eager |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    compile_spent = [0.0]
    for name in args.models.split(","):
        bench_model(name.strip(), args, peak, compile_spent)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
