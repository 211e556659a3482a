"""Trainer overhead against a bare hand-written loop, and the demo's time-to-99% on digits (CPU).

1. Overhead: ResNet-20 on the digits at the demo's input size, the ``quick`` recipe's settings, ``--epochs`` epochs,
   each epoch = train + top-1 on the validation split. The bare loop is the shortest correct loop with the same work
   (same data tensors, same pad-crop augmentation as one gather, same SGD, label smoothing and lr schedule); the
   trainer additionally keeps top-1/top-5/loss/confusion on the device, writes metrics/config/summary each epoch,
   and checks for signals. Timed: the epochs only (model and data set-up excluded for both), the two alternated
   ``--rounds`` times; the median of each is compared.
2. Time-to-99%: ``cnnzoo.train("resnet20", data="digits", recipe="quick")`` for ``--seeds`` seeds: the first epoch
   whose validation top-1 reaches 99%, and the training + validation seconds spent up to it.

Run: ``.venv/bin/python benchmarks/bench_trainer.py`` (about 3 minutes on an idle 2-core CPU).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

import cnnzoo
from cnnzoo.training import get_recipe, load_data, train


def bare_loop(size: int, epochs: int, seed: int) -> float:
    """A hand-written loop doing the trainer's work; returns the seconds spent in the epochs."""
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
    for epoch in range(epochs):
        model.train()
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
        model.eval()
        with torch.no_grad():
            top1 = sum((model(xv[j : j + bs]).argmax(1) == yv[j : j + bs]).sum().item() for j in range(0, len(xv), bs))
        _ = 100 * top1 / len(xv)
    return time.perf_counter() - t0


def trainer_loop(size: int, epochs: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        result = train("resnet20", data="digits", recipe="quick", image_size=size, epochs=epochs, seed=seed, out=out,
                       checkpoints=False, progress=False, log=None, device="cpu")
    return sum(row["seconds"] for row in result.history)


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
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; resnet20 on digits at "
          f"{args.image_size}x{args.image_size}")

    bare, ours = [], []
    trainer_loop(args.image_size, 1, 0)  # warm-up: lazy imports, allocator
    for _ in range(args.rounds):
        bare.append(bare_loop(args.image_size, args.epochs, 0))
        ours.append(trainer_loop(args.image_size, args.epochs, 0))
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"\n1. overhead, {args.epochs} epochs x {args.rounds} rounds (alternated)")
    print(f"   bare loop: {', '.join(f'{t:.2f}' for t in bare)} s  (median {b:.2f} s)")
    print(f"   trainer:   {', '.join(f'{t:.2f}' for t in ours)} s  (median {o:.2f} s)")
    print(f"   trainer / bare = {o / b:.3f} by medians ({100 * (o / b - 1):+.1f}%), "
          f"{min(ours) / min(bare):.3f} by minima ({100 * (min(ours) / min(bare) - 1):+.1f}%)")

    print(f"\n2. time to 99% validation top-1, recipe 'quick' ({get_recipe('quick').epochs} epochs), "
          f"{args.seeds} seeds")
    for row in time_to_99(args.image_size, args.seeds):
        reached = f"epoch {row['reached'][0]} after {row['reached'][1]:.1f} s" if row["reached"] else "never"
        print(f"   seed {row['seed']}: 99% at {reached}; final top-1 {row['final']:.2f}% after "
              f"{row['train_seconds']:.1f} s training ({row['wall']:.1f} s wall incl. set-up)")


if __name__ == "__main__":
    main()
