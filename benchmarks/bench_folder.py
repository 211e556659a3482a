"""Image folders decoded once (issue 9): cnnzoo on a folder against the same steps on resident tensors, the start-up
a decode cache saves, and the data path alone at 224 px.

    python benchmarks/bench_folder.py [--images 2000] [--epochs 3] [--image-size 16] [--jpegs 300]

One process, the same model (resnet20), recipe (resnet_cifar with flip=false, its schedule fitted to the run) and
epochs for every contender, on ``digit_folder.digit_folder(--images)`` (28x28 PNGs of scikit-learn's digits,
upscaled, shifted and noised; 80% train/, 20% val/):

(a) ``cnnzoo.train`` on the folder with ``--cache disk`` (in a fresh cache directory): first run (decodes, writes the
    cache) and later runs (cache hits); start-up = from the call to the end of ``prepare`` (the header's last line);
(b) the same steps on resident synthetic tensors of the stored size (the compute-bound limit of this machine),
    alternated with (a)'s cache hits, round by round.

Targets: (a) cached throughput >= 0.9x (b); the second start >= 10x sooner than the first. Then the data path alone
at 224 px: ``--jpegs`` JPEGs of 500x375 under the ``finetune`` recipe's random-resized crops: decode once + cached
epochs against ``ImageFolder`` + ``DataLoader``, images/s. (cnnzoo against the ImageFolder + DataLoader loop a user
writes, whole training runs: bench_train_folder.py.)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import cnnzoo
from cnnzoo.data.sources import Data, TensorSource
from digit_folder import digit_folder
from machine import Bench, add_arguments, col


def run_cnnzoo(folder: Path, out: Path, args, **extra) -> tuple[dict, float]:
    t0, marks = time.perf_counter(), {}

    def log(line: str) -> None:
        if line.startswith("plan:"):
            marks["start"] = time.perf_counter() - t0

    result = cnnzoo.train("resnet20", data=extra.pop("data", str(folder)), image_size=args.image_size,
                          epochs=args.epochs, overrides=["flip=false"], out=out, device="cpu", progress=False,
                          checkpoints=False, log=log, threads=args.threads, **extra)
    return result.summary, marks["start"]


def jpeg_case(root: Path, args, bench: Bench) -> None:
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    from cnnzoo.data import load_data, make_loader
    from cnnzoo.data.cache import hold_folder
    from cnnzoo.training.recipes import RECIPES

    rs = np.random.RandomState(1)
    for i in range(args.jpegs):
        small = rs.randint(0, 255, (15, 20, 3)).astype(np.uint8)
        img = Image.fromarray(small).resize((500, 375), Image.BICUBIC)
        path = root / "train" / str(i % 10) / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, quality=90)
        if i % 10 == 0:
            (root / "val" / str(i % 10)).mkdir(parents=True, exist_ok=True)
            img.save(root / "val" / str(i % 10) / f"{i:05d}.jpg", quality=90)
    recipe = RECIPES["finetune"]
    data = load_data(str(root), image_size=224)
    t0 = time.perf_counter()
    held, geo, _ = hold_folder(data, recipe.geometry(224), recipe.eval_geometry(224), mode="memory",
                               threads=args.threads, progress=False)
    decode = time.perf_counter() - t0
    loader = make_loader(held, "train", geo=geo, batch_size=64, device=torch.device("cpu"), seed=0)
    tf = T.Compose([T.RandomResizedCrop(224, scale=(0.25, 1.0)), T.RandomHorizontalFlip(), T.ToTensor()])
    workers = min(8, max(1, (os.cpu_count() or 1) - 1))
    dl = torch.utils.data.DataLoader(ImageFolder(root / "train", tf), batch_size=64, shuffle=True,
                                     num_workers=workers, persistent_workers=True)
    for epoch in range(2):  # alternated; the second epoch of each is the warm one reported
        t0 = time.perf_counter()
        n = sum(len(y) for _, y in loader.epoch(epoch))
        cached = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        m = sum(len(y) for _, y in dl)
        streamed = m / (time.perf_counter() - t0)
    table = bench.table("jpegs", f"224 px, {len(data.train)} JPEGs of 500x375, the data path alone (no model)", [
        col("path", "path"), col("images_per_s", "img/s", "{:,.0f}"), col("seconds", "time (s)", "{:.1f}")])
    table.add(path=f"cnnzoo decode once (stored short side {geo.resize})", images_per_s=len(data.train) / decode,
              seconds=decode)
    table.add(path="cnnzoo cached epoch, warm (resident uint8, batched crops)", images_per_s=cached, seconds=n / cached)
    table.add(path=f"ImageFolder + RandomResizedCrop + DataLoader ({workers} workers), warm epoch",
              images_per_s=streamed, seconds=m / streamed)
    bench.note(f"224 px: cached epoch / ImageFolder epoch = {cached / streamed:.2f}x (the second epoch of each).")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--jpegs", type=int, default=300, help="JPEGs of the 224-px case (0: skip it)")
    add_arguments(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    bench = Bench("folder", results=args.results)
    folder = digit_folder(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["CNNZOO_CACHE_DIR"] = str(tmp / "cache")  # this run's decode cache: the first run decodes
        first, start1 = run_cnnzoo(folder, tmp / "a1", args, cache="disk")
        second, start2 = run_cnnzoo(folder, tmp / "a2", args, cache="disk")
        n_train = len(list((folder / "train").rglob("*.png")))
        gen = torch.Generator().manual_seed(0)
        s = args.image_size
        resident = Data("synthetic", tuple(map(str, range(10))),
                        TensorSource(torch.randint(0, 256, (n_train, 3, s, s), generator=gen, dtype=torch.uint8),
                                     torch.randint(0, 10, (n_train,), generator=gen)),
                        TensorSource(torch.randint(0, 256, (64, 3, s, s), generator=gen, dtype=torch.uint8),
                                     torch.randint(0, 10, (64,), generator=gen)), 3, (0.5,) * 3, (0.289,) * 3)
        synth, _ = run_cnnzoo(folder, tmp / "b", args, data=resident)
        # (a, cached) and (b) once more, the order swapped; the ratio is taken round by round
        synth2, _ = run_cnnzoo(folder, tmp / "b2", args, data=resident)
        again, _ = run_cnnzoo(folder, tmp / "a3", args, cache="disk")
        runs = bench.table("runs", f"{args.images:,} PNGs of 28x28 ({n_train:,} train), resnet20 at {s} px, "
                           f"{args.epochs} epochs, batch 128, in this order", [
                               col("run", "run"), col("images_per_s", "img/s", "{:,.0f}"),
                               col("train_seconds", "training (s)", "{:.1f}"), col("top1", "val top-1")])  # fmt: skip
        for name, row in (("(a) cnnzoo on the folder, 1st run (decodes, writes the cache)", first),
                          ("(a) 2nd run (cache hit)", second), ("(b) resident synthetic tensors", synth),
                          ("(b) again", synth2), ("(a) 3rd run (cache hit)", again)):
            runs.add(run=name, images_per_s=row["images_per_s"], train_seconds=row["train_seconds"],
                     top1="(random labels)" if name.startswith("(b)") else f"{row['final_val_top1']:.2f}%")
        ratios = bench.table("ratios", "", [col("what", "what"), col("value", "value", "{:.2f}"),
                                            col("target", "target")])  # fmt: skip
        ratios.add(what="cached / resident, round 1 (2nd run / (b))",
                   value=second["images_per_s"] / synth["images_per_s"], target=">= 0.9")
        ratios.add(what="cached / resident, round 2 (3rd run / (b) again)",
                   value=again["images_per_s"] / synth2["images_per_s"], target=">= 0.9")
        ratios.add(what=f"start-up, 1st run / 2nd run ({start1:.2f} s / {start2:.2f} s)", value=start1 / start2,
                   target=">= 10")
        if args.jpegs:
            jpeg_case(tmp / "jpegs", args, bench)
    bench.finish()


if __name__ == "__main__":
    main()
