"""The CPU training step at the machine's pace: eager NCHW fp32 against channels-last, bf16 autocast,
``torch.compile`` and one thread.

    python benchmarks/bench_cpu_train.py [--models resnet20,resnet56,densenet40_k12] [--rounds 5] [--steps 3]
        [--batch 128] [--compile-budget 600] [--no-compile]

One training step = ``zero_grad``, forward, cross-entropy, backward, SGD (momentum 0.9, weight decay 1e-4, as He et
al. 2016 §4.2 train the CIFAR ResNets) on a fixed synthetic batch at the model's native input (3x32x32). Variants,
all in this one process:

* ``eager``: NCHW fp32, torch's default thread count (all cores): the baseline, every ratio is against it;
* ``eager-1t``: the same with one thread;
* ``channels-last``: model and batch in ``torch.channels_last``;
* ``bf16`` and ``channels-last bf16``: forward and loss under ``torch.autocast("cpu", torch.bfloat16)`` (only on a
  CPU with native bf16: AVX512_BF16 or AMX);
* ``compile``: ``torch.compile(model)`` (inductor, CPU; the optimizer step stays eager). Its first step (the
  compilation of forward and backward) is timed separately; compilation stops being attempted for further models
  once ``--compile-budget`` seconds have been spent on it.

Warm first (one untimed step per variant), then ``--rounds`` rounds that alternate the variants, ``--steps`` timed
steps per variant and round; per variant the median over all timed steps. FLOP rate: MACs x 2 (multiply-add) x 3
(forward, and backward's two products: input and weight gradients) per image, MACs from ``cnnzoo.analyze``, as a
fraction of the machine's peak for the variant's precision (benchmarks/machine.py: fp32, or bf16 where native).

Resume safety: per variant, from one saved model + optimizer state, a step is run, the state is loaded back and the
same step runs again; "bit-exact" means the parameters after both are identical (what an exact resume needs).
The largest parameter difference to eager NCHW after one step from the same state is printed beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from machine import Bench, Table, add_arguments, col, training_flops_per_image


@dataclass
class Variant:
    name: str
    threads: int
    channels_last: bool = False
    bf16: bool = False
    compiled: bool = False


def make_step(model: nn.Module, opt: torch.optim.Optimizer,
              bf16: bool) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
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
        self.step = make_step(module, self.opt, variant.bf16)
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


def variants(args: argparse.Namespace, threads: int, native_bf16: bool, compile_ok: bool) -> list[Variant]:
    chosen = [Variant("eager", threads), Variant("eager-1t", 1), Variant("channels-last", threads, channels_last=True)]
    if native_bf16:
        chosen += [Variant("bf16", threads, bf16=True), Variant("channels-last bf16", threads, True, bf16=True)]
    if compile_ok:
        chosen.append(Variant("compile", threads, compiled=True))
    return chosen


def bench_model(name: str, args: argparse.Namespace, bench: Bench, table: Table, compile_spent: list[float],
                threads: int) -> None:
    info = cnnzoo.model_info(name)
    flop_per_step = training_flops_per_image(cnnzoo.analyze(name, training=False).totals.macs) * args.batch
    torch.manual_seed(0)
    base = cnnzoo.create_model(name)
    x = torch.randn(args.batch, *info.input_size)
    y = torch.randint(0, info.num_classes, (args.batch,))
    compile_ok = not args.no_compile and compile_spent[0] < args.compile_budget
    if not args.no_compile and not compile_ok:
        bench.note(f"{name}: compile not run (the compile budget of {args.compile_budget:.0f} s was spent)")
    native_bf16 = bench.machine.cpu.bf16_flop_per_cycle is not None
    start_state = None
    runners: list[Runner] = []
    for v in variants(args, threads, native_bf16, compile_ok):
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
        for r in runners[i % len(runners):] + runners[: i % len(runners)]:
            r.run(args.steps)
        print(f"  {name} round {i + 1}: " + ", ".join(f"{r.variant.name} {r.times[-1] * 1e3:.0f} ms" for r in runners),
              flush=True)  # fmt: skip
    torch.set_num_threads(threads)
    checks = []
    reference = None
    for r in runners:
        exact, params = resume_check(r, start_state)
        reference = params if reference is None else reference
        checks.append((exact, max(float((a - b).abs().max()) for a, b in zip(params, reference))))
    baseline = statistics.median(runners[0].times)
    for r, (exact, diff) in zip(runners, checks):
        med = statistics.median(r.times)
        rate = flop_per_step / med
        table.add(model=name, variant=r.variant.name, threads=r.variant.threads, step_ms=med * 1e3,
                  speedup=baseline / med, images_per_s=args.batch / med, gflops=rate / 1e9,
                  peak=bench.peak_fraction(rate, "bf16" if r.variant.bf16 else "fp32"),
                  precision="bf16" if r.variant.bf16 else "fp32", first_step_s=r.first_step_s, exact=exact,
                  diff=f"{diff:.1e}")  # fmt: skip
    torch.set_num_threads(threads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet20,resnet56,densenet40_k12")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--compile-budget", type=float, default=600.0, help="seconds of compilation, all models")
    parser.add_argument("--no-compile", action="store_true")
    add_arguments(parser)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    bench = Bench("cpu_train", results=args.results)
    table = bench.table("steps", f"one SGD step at batch {args.batch}, 3x32x32, median of {args.rounds} alternated "
                        f"rounds x {args.steps} steps; % of the peak of the variant's precision", [
                            col("model", "model"), col("variant", "variant"), col("threads", "threads"),
                            col("step_ms", "step (ms)", "{:.0f}"), col("speedup", "vs eager", "{:.2f}x"),
                            col("images_per_s", "img/s", "{:,.0f}"), col("gflops", "GFLOP/s", "{:.1f}"),
                            col("peak", "of peak", "{:.1%}"), col("precision", "peak of"),
                            col("first_step_s", "first step (s)", "{:.1f}"), col("exact", "resume bit-exact"),
                            col("diff", "max param diff vs eager")])  # fmt: skip
    compile_spent = [0.0]
    for name in args.models.split(","):
        bench_model(name.strip(), args, bench, table, compile_spent, threads)
    bench.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
