"""Training on a real image folder: ``cnnzoo train`` with its default flags (and with ``--amp bf16``) against the
ImageFolder + DataLoader loop a user writes, same epochs, same recipe shape, alternated, each run a process of its
own.

    python benchmarks/bench_train_folder.py            # 10,000 PNGs, 8 epochs (the acceptance run; idle machine)
    python benchmarks/bench_train_folder.py --quick    # 1,000 PNGs, 2 epochs: a trial, never recorded

The folder: ``digit_folder.digit_folder(--images)``, 28x28 grey PNGs of scikit-learn's digits (upscaled, shifted,
noised; 10 classes; every fifth image in val/), generated once and cached. Contenders, each from the files:

* ``cnnzoo``: ``cnnzoo train resnet20 --data FOLDER --epochs E --set flip=false`` (the CLI, in this process), with
  default flags: whatever layout, precision and threads cnnzoo chooses by itself (read back from config.json);
* ``cnnzoo --amp bf16``: the same with ``--amp bf16`` (only on a CPU with native bf16: AVX512_BF16 or AMX);
* ``ImageFolder loop``, the baseline: torchvision ``ImageFolder`` + transforms + ``DataLoader`` (shuffle, the
  usual ``cores - 1`` workers, at most 8), the same network (``cnnzoo.create_model("resnet20")``), NCHW fp32, plain
  ``torch.optim.SGD`` and ``MultiStepLR``, a validation pass per epoch, written as a user writes it. Its recipe
  shape is read from the cnnzoo run's config.json: batch, lr, momentum, weight decay, milestones (in steps, as
  cnnzoo scaled them to the run), input size, resize, pad, normalisation; the steps per epoch must agree.

Each run is a fresh Python process (``--child``), as a user runs either: what one contender sets for its process
(cnnzoo's heap settings, ``torch.set_num_threads``) never reaches another. Every cnnzoo run decodes the PNGs itself
(a fresh ``CNNZOO_CACHE_DIR`` per run: no run reads another's decoded cache). Warm vs warm: in its process each run
first trains one untimed epoch on a 300-image folder (imports, oneDNN kernels), then the timed run. ``--rounds``
rounds, the order rotated each round. Time = wall seconds of the timed call (cnnzoo's includes its checkpoints and
report.html, as the command does); beside it the training seconds, images/s and the fraction of the machine's peak
they reach (FLOPs per image = 2 x MACs x 3 for forward and backward, MACs from ``cnnzoo.analyze``; bf16 runs
against the bf16 peak), and the final val top-1.

Targets (issue 19): cnnzoo default <= 0.7x the ImageFolder loop's time at its top-1 or better; with ``--amp bf16``
on a native-bf16 CPU <= 0.5x.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import cnnzoo
from cnnzoo import cli
from digit_folder import digit_folder
from machine import Bench, add_arguments, alternate, col, training_flops_per_image

MODEL = "resnet20"
BASELINE = "ImageFolder loop"


def imagefolder_loop(folder: Path, config: dict[str, Any], *, epochs: int, workers: int, seed: int = 0,
                     warm_up: bool = False) -> dict:
    """The loop a user writes with torchvision, on cnnzoo's recipe shape (``config``: a run's config.json;
    ``warm_up``: on another folder than the run's, so its steps per epoch differ)."""
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    r = config["recipe"]
    r = {**r, **config["schedule"]["scaled"]}  # the recipe's lengths as cnnzoo fitted them to this run
    if r["augment"] != "pad_crop" or r["schedule"] != "multistep" or r["warmup_iterations"] or r["warmup_epochs"]:
        raise SystemExit(f"the ImageFolder loop writes pad-crop + multistep without warm-up; the run used {r}")
    size, resize = config["image_size"], config["eval_resize"]
    pad = round(r["pad_px"] * size / r["crop_px"])
    norm = T.Normalize(config["mean"], config["std"])
    flip = [T.RandomHorizontalFlip()] if r["flip"] else []
    train_set = ImageFolder(folder / "train", T.Compose([T.Resize(resize), T.RandomCrop(size, padding=pad), *flip,
                                                         T.ToTensor(), norm]))  # fmt: skip
    val_set = ImageFolder(folder / "val", T.Compose([T.Resize(resize), T.CenterCrop(size), T.ToTensor(), norm]))
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=r["batch_size"], shuffle=True, drop_last=True,
                                               num_workers=workers, persistent_workers=workers > 0)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=r["batch_size"], num_workers=workers,
                                             persistent_workers=workers > 0)
    if not warm_up and len(train_loader) != config["steps_per_epoch"]:
        raise SystemExit(f"steps per epoch: ImageFolder loop {len(train_loader)}, cnnzoo {config['steps_per_epoch']}")
    steps = len(train_loader)
    milestones = sorted([*r["milestones_iterations"], *(round(e * steps) for e in r["milestones_epochs"]),
                         *(round(f * steps * epochs) for f in r["milestones_fraction"])])  # fmt: skip

    torch.manual_seed(seed)
    net = cnnzoo.create_model(MODEL, num_classes=len(train_set.classes))
    opt = torch.optim.SGD(net.parameters(), lr=r["lr"], momentum=r["momentum"], dampening=r["dampening"],
                          nesterov=r["nesterov"], weight_decay=r["weight_decay"])
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=r["gamma"])
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=r["label_smoothing"])
    train_seconds, seen, top1 = 0.0, 0, 0.0
    for epoch in range(epochs):
        net.train()
        start = time.perf_counter()
        for x, y in train_loader:
            loss = criterion(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            seen += len(y)
        train_seconds += time.perf_counter() - start
        net.eval()
        hits = total = 0
        with torch.no_grad():
            for x, y in val_loader:
                hits += (net(x).argmax(1) == y).sum().item()
                total += len(y)
        top1 = 100 * hits / total
        print(f"  {BASELINE} epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}, val top-1 {top1:.2f}%", flush=True)
    return {"train_seconds": train_seconds, "images_per_s": seen / train_seconds, "top1": top1,
            "layout": "nchw", "amp": "off", "threads": torch.get_num_threads()}  # fmt: skip


@contextlib.contextmanager
def fresh_cache_dir():
    """A fresh ``CNNZOO_CACHE_DIR`` for one run: it decodes the folder itself."""
    old = os.environ.get("CNNZOO_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="cnnzoo-bench-cache-") as tmp:
        os.environ["CNNZOO_CACHE_DIR"] = tmp
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("CNNZOO_CACHE_DIR", None)
            else:
                os.environ["CNNZOO_CACHE_DIR"] = old


def layout_of(config: dict[str, Any]) -> str:
    """The memory layout a cnnzoo run trained in, from its config.json (a chosen ``layout``, else the flag)."""
    layout = config.get("layout")
    if isinstance(layout, str):
        return layout
    return "channels-last" if config.get("channels_last") else "NCHW"


def cnnzoo_run(folder: Path, out: Path, *, epochs: int, flags: list[str]) -> tuple[dict, dict]:
    """``cnnzoo train resnet20 --data FOLDER --epochs E --set flip=false FLAGS`` -> (config.json, summary.json)."""
    argv = ["train", MODEL, "--data", str(folder), "--epochs", str(epochs), "--set", "flip=false", "--out", str(out),
            *flags]  # fmt: skip
    print(f"  $ cnnzoo {' '.join(argv)}", flush=True)
    with fresh_cache_dir():
        code = cli.main(argv)
    if code:
        raise SystemExit(f"cnnzoo train exited with {code}")
    return json.loads((out / "config.json").read_text()), json.loads((out / "summary.json").read_text())


def child(spec: dict[str, Any]) -> None:
    """One timed run in this process (``--child``): an untimed epoch on the warm-up folder, then the run; its row
    goes to ``spec["result"]`` as JSON."""
    folder, warm_folder, out = Path(spec["folder"]), Path(spec["warm_folder"]), Path(spec["out"])
    epochs = spec["epochs"]
    if spec["name"] == BASELINE:
        config = json.loads(Path(spec["config"]).read_text())
        imagefolder_loop(warm_folder, config, epochs=1, workers=spec["workers"], warm_up=True)
        start = time.perf_counter()
        row = imagefolder_loop(folder, config, epochs=epochs, workers=spec["workers"])
        row["wall_seconds"] = time.perf_counter() - start
    else:
        cnnzoo_run(warm_folder, out / "warm", epochs=1, flags=spec["flags"])
        start = time.perf_counter()
        config, summary = cnnzoo_run(folder, out / "run", epochs=epochs, flags=spec["flags"])
        wall = time.perf_counter() - start
        row = {"wall_seconds": wall, "train_seconds": summary["train_seconds"],
               "images_per_s": summary["images_per_s"], "top1": summary["final_val_top1"],
               "layout": layout_of(config), "amp": config.get("amp"), "threads": config.get("threads"),
               "config": str(out / "run" / "config.json"), "image_size": config["image_size"]}  # fmt: skip
    Path(spec["result"]).write_text(json.dumps(row))


def spawn(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` run by ``child`` in a fresh Python process; its row."""
    code = subprocess.call([sys.executable, __file__, "--child", json.dumps(spec)])
    if code:
        raise SystemExit(f"{spec['name']}: its process exited with {code}")
    return json.loads(Path(spec["result"]).read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--rounds", type=int, default=1, help="rounds of the three contenders, order rotated")
    p.add_argument("--workers", type=int, default=min(8, max(1, (os.cpu_count() or 1) - 1)),
                   help="the ImageFolder loop's DataLoader workers (default: cores - 1, at most 8)")
    p.add_argument("--quick", action="store_true", help="1,000 images, 2 epochs: a trial under load, never recorded")
    p.add_argument("--child", metavar="JSON", help=argparse.SUPPRESS)  # one run in its own process (``child``)
    add_arguments(p)
    args = p.parse_args()
    if args.child:
        child(json.loads(args.child))
        return 0
    if args.quick:
        args.images, args.epochs = 1_000, 2
    bench = Bench("train_folder", results=args.results, trial="--quick" if args.quick else None)
    native_bf16 = bench.machine.cpu.bf16_flop_per_cycle is not None
    folder, warm_folder = digit_folder(args.images), digit_folder(300)
    n_train = sum(1 for _ in (folder / "train").rglob("*.png"))
    print(f"# folder: {folder} ({args.images:,} PNGs, {n_train:,} train), {args.epochs} epochs, {args.rounds} round(s);"
          " each run in a process of its own, after an untimed epoch on a 300-image folder")

    tmp = Path(tempfile.mkdtemp(prefix="cnnzoo-bench-runs-"))
    contenders: dict[str, list[str]] = {"cnnzoo": []}
    if native_bf16:
        contenders["cnnzoo --amp bf16"] = ["--amp", "bf16"]
    else:
        bench.note("cnnzoo --amp bf16: not run (this CPU has no native bf16: neither AVX512_BF16 nor AMX)")
    latest: dict[str, Any] = {}  # the latest default cnnzoo run's row: the loop reads its recipe from its config.json

    def run(name: str, tag: str) -> dict:
        spec = {"name": name, "folder": str(folder), "warm_folder": str(warm_folder), "epochs": args.epochs,
                "out": str(tmp / tag), "result": str(tmp / f"{tag}.json"), "workers": args.workers,
                "flags": contenders.get(name, [])}  # fmt: skip
        if name == BASELINE:
            if not latest:
                raise SystemExit("the ImageFolder loop reads its recipe from a cnnzoo run on the same folder first")
            spec["config"] = latest["config"]
        row = spawn(spec)
        if name == "cnnzoo":
            latest.update(row)
        return row

    names = [*contenders, BASELINE]
    done: dict[str, list[dict]] = {name: [] for name in names}  # each contender's runs, in round order
    results: dict[str, list[dict]] = {name: [] for name in names}  # the same as table rows
    flops, runs = 0.0, None  # set after the first round: the input size is the one cnnzoo chose

    def contender(name: str):
        return lambda: done[name].append(run(name, f"r{len(done[name])}-{name.replace(' ', '_')}"))

    def record(r: int, _walls: dict[str, list[float]]) -> None:
        nonlocal flops, runs
        if runs is None:
            size = latest["image_size"]
            flops = training_flops_per_image(cnnzoo.analyze(MODEL, (3, size, size), training=False).totals.macs)
            runs = bench.table("runs", f"{args.images:,} PNGs of 28x28 ({n_train:,} training images), {MODEL} at "
                               f"{size} px, {args.epochs} epochs, each row one run (its own process)", [
                                   col("contender", "contender"), col("round", "round"),
                                   col("wall_seconds", "time (s)", "{:.1f}"),
                                   col("train_seconds", "training (s)", "{:.1f}"),
                                   col("images_per_s", "train img/s", "{:,.0f}"), col("gflops", "GFLOP/s", "{:.1f}"),
                                   col("peak", "of peak", "{:.1%}"), col("top1", "val top-1", "{:.2f}%"),
                                   col("layout", "layout"), col("precision", "precision"),
                                   col("threads", "threads")])  # fmt: skip
        for name in names:
            row = done[name][r]
            precision = "bf16" if row["amp"] == "bf16" else "fp32"
            rate = row["images_per_s"] * flops
            results[name].append(runs.add(contender=name, round=r + 1, wall_seconds=row["wall_seconds"],
                                          train_seconds=row["train_seconds"], images_per_s=row["images_per_s"],
                                          gflops=rate / 1e9, peak=bench.peak_fraction(rate, precision),
                                          top1=row["top1"], precision=precision, threads=row["threads"],
                                          layout=row["layout"]))  # fmt: skip

    # round 1 runs cnnzoo first (the loop reads its recipe from that run's config.json), then the order rotates
    alternate({name: contender(name) for name in names}, args.rounds, warm=0, after_round=record)
    ratios = bench.table("ratios", f"against the {BASELINE} (medians over rounds)", [
        col("contender", "contender"), col("time_ratio", "time vs loop", "{:.2f}x"),
        col("per_round", "per round"), col("train_ratio", "training time vs loop", "{:.2f}x"),
        col("top1_points", "top-1 vs loop", "{:+.2f} points"), col("target", "target"), col("met", "met")])  # fmt: skip
    base = results[BASELINE]
    for name, target in (("cnnzoo", 0.7), ("cnnzoo --amp bf16", 0.5)):
        if name not in results:
            continue
        per_round = [a["wall_seconds"] / b["wall_seconds"] for a, b in zip(results[name], base)]
        ratio = statistics.median(per_round)
        train_ratio = statistics.median(a["train_seconds"] / b["train_seconds"] for a, b in zip(results[name], base))
        points = statistics.median(a["top1"] for a in results[name]) - statistics.median(b["top1"] for b in base)
        ratios.add(contender=name, time_ratio=ratio, per_round=", ".join(f"{x:.2f}" for x in per_round),
                   train_ratio=train_ratio, top1_points=points, target=f"<= {target}x at the loop's top-1 or better",
                   met=ratio <= target and points >= 0)  # fmt: skip
    shutil.rmtree(tmp, ignore_errors=True)
    bench.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
