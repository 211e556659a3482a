"""Trainer overhead against a bare hand-written loop, and the demo's time-to-99% on digits (CPU).

1. Overhead: ResNet-20 on the digits at the demo's input size, the ``quick`` recipe's settings, ``--epochs`` epochs,
   each epoch = train + top-1 on the validation split. The bare loop is the shortest correct loop with the same work
   (same data tensors, same pad-crop augmentation as one gather, same SGD, label smoothing and lr schedule); the
   trainer additionally keeps top-1/top-5/loss/confusion on the device, writes metrics/config/summary each epoch,
   and checks for signals. Timed: the epochs only (model and data set-up excluded for both), the two alternated
   ``--rounds`` times; the median of each is compared.
2. Time-to-99%: ``cnnzoo.train("resnet20", data="digits", recipe="quick")`` for ``--seeds`` seeds: the first epoch
   whose validation top-1 reaches 99%, and the training + validation seconds spent up to it.

Training rates are given as images/s and as a fraction of the machine's fp32 peak (2 x MACs x 3 FLOPs per image at
the run's input size, MACs from ``cnnzoo.analyze``; benchmarks/machine.py).

Run: ``.venv/bin/python benchmarks/bench_trainer.py`` (about 3 minutes on an idle 2-core CPU).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import cnnzoo
from cnnzoo.training import get_recipe, load_data, train
from machine import Bench, add_arguments, col, training_flops_per_image


def bare_loop(size: int, epochs: int, seed: int) -> tuple[float, float]:
    """A hand-written loop doing the trainer's work: (seconds spent in the epochs, training images/s)."""
    recipe = get_recipe("quick")
    data = load_data("digits", image_size=size)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(data.std).view(1, -1, 1, 1) * 255
    xs, ys = data.train.images, data.train.labels
    xv = (data.val.images.float() - mean) / std
    yv = data.val.labels
    torch.manual_seed(seed)
    model = cnnzoo.create_model("resnet20")
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                          weight_decay=recipe.weight_decay)
    bs, pad = recipe.batch_size, round(recipe.pad_px * size / recipe.crop_px)
    steps = len(xs) // bs
    total, warm = steps * epochs, steps
    padded = F.pad(xs, (pad,) * 4)
    ar = torch.arange(size)
    t0 = time.perf_counter()
    train_seconds = 0.0
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        perm = torch.randperm(len(xs))
        for i in range(steps):
            idx = perm[i * bs : (i + 1) * bs]
            dy, dx = torch.randint(0, 2 * pad + 1, (2, bs))
            rows = (dy[:, None] + ar).view(bs, 1, size, 1)
            cols = (dx[:, None] + ar).view(bs, 1, 1, size)
            x = padded[idx.view(bs, 1, 1, 1), torch.arange(3).view(1, 3, 1, 1), rows, cols]
            x = (x.float() - mean) / std
            step = epoch * steps + i
            lr = recipe.lr * 0.5 * (1 + math.cos(math.pi * max(0, step - warm) / (total - warm)))
            lr = lr * (step + 1) / warm if step < warm else lr
            for group in opt.param_groups:
                group["lr"] = lr
            loss = F.cross_entropy(model(x), ys[idx], label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        train_seconds += time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            top1 = sum((model(xv[j : j + bs]).argmax(1) == yv[j : j + bs]).sum().item() for j in range(0, len(xv), bs))
        _ = 100 * top1 / len(xv)
    return time.perf_counter() - t0, steps * bs * epochs / train_seconds


def trainer_loop(size: int, epochs: int, seed: int) -> tuple[float, float]:
    """``cnnzoo.train``: (seconds spent in the epochs, training images/s)."""
    with tempfile.TemporaryDirectory() as out:
        result = train("resnet20", data="digits", recipe="quick", image_size=size, epochs=epochs, seed=seed, out=out,
                       checkpoints=False, progress=False, log=None, device="cpu")
    return sum(row["seconds"] for row in result.history), result.summary["images_per_s"]


def time_to_99(size: int, seeds: int) -> list[dict]:
    rows = []
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            result = train("resnet20", data="digits", recipe="quick", image_size=size, seed=seed, out=out,
                           progress=False, log=None, device="cpu")
            wall = time.perf_counter() - t0
        elapsed, reached = 0.0, None
        for row in result.history:
            elapsed += row["seconds"]
            if row["val_top1"] >= 99.0:
                reached = (row["epoch"], elapsed)
                break
        rows.append({"seed": seed, "reached": reached, "final": result.summary["final_val_top1"],
                     "train_seconds": result.summary["train_seconds"], "wall": wall})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    add_arguments(parser)
    args = parser.parse_args()
    bench = Bench("trainer", results=args.results)
    size = args.image_size
    flops = training_flops_per_image(cnnzoo.analyze("resnet20", (3, size, size), training=False).totals.macs)

    sides: dict[str, Callable[[], tuple[float, float]]] = {
        "bare loop": lambda: bare_loop(size, args.epochs, 0),
        "cnnzoo.train": lambda: trainer_loop(size, args.epochs, 0)}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for fn in sides.values():  # warm-up: lazy imports, allocator, oneDNN kernels
        fn()
    for r in range(args.rounds):  # alternated, the order rotated each round
        for name in list(sides)[r % 2:] + list(sides)[: r % 2]:
            runs[name].append(sides[name]())
    table = bench.table("overhead", f"1. resnet20 on digits at {size} px, recipe quick, {args.epochs} epochs (train + "
                        f"validation), {args.rounds} alternated rounds", [
                            col("side", "side"), col("runs", "runs (s)"), col("median_s", "median (s)", "{:.2f}"),
                            col("ratio", "vs bare (medians)", "{:.3f}"), col("ratio_min", "vs bare (minima)", "{:.3f}"),
                            col("images_per_s", "train img/s", "{:,.0f}"),
                            col("peak", "of fp32 peak", "{:.1%}")])  # fmt: skip
    bare = [t for t, _ in runs["bare loop"]]
    for name, rows in runs.items():
        times = [t for t, _ in rows]
        rate = statistics.median(ips for _, ips in rows)
        table.add(side=name, runs=", ".join(f"{t:.2f}" for t in times), median_s=statistics.median(times),
                  ratio=statistics.median(times) / statistics.median(bare), ratio_min=min(times) / min(bare),
                  images_per_s=rate, peak=bench.peak_fraction(rate * flops))

    seeds = bench.table("time_to_99", f"2. time to 99% validation top-1, recipe quick ({get_recipe('quick').epochs} "
                        "epochs), per seed", [
                            col("seed", "seed"), col("epoch", "99% at epoch"), col("seconds", "after (s)", "{:.1f}"),
                            col("final", "final top-1", "{:.2f}%"), col("train_seconds", "training (s)", "{:.1f}"),
                            col("wall", "wall incl. set-up (s)", "{:.1f}")])  # fmt: skip
    for row in time_to_99(size, args.seeds):
        epoch, seconds = row["reached"] or (None, None)
        seeds.add(seed=row["seed"], epoch=epoch if epoch is not None else "never", seconds=seconds, final=row["final"],
                  train_seconds=row["train_seconds"], wall=row["wall"])
    bench.finish()


if __name__ == "__main__":
    main()
