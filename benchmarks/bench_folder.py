"""Benchmark of image folders decoded once (issue 9): cnnzoo on a folder against resident tensors and torchvision.

    .venv/bin/python benchmarks/bench_folder.py [--images 2000] [--epochs 3] [--image-size 16] [--jpegs 300]
    .venv/bin/python benchmarks/bench_folder.py --images 10000 --image-size 32 --epochs 8 --jpegs 2000   # the issue's

One process, one machine, the same model (resnet20), recipe shape (resnet_cifar with flip=false, scaled to the run)
and epochs for every contender, on a generated folder of 28x28 PNGs with real class structure (scikit-learn's 8x8
digits upscaled, shifted by up to 3 px, with Gaussian noise; 80% train/, 20% val/):

(a) ``cnnzoo.train`` on the folder with ``--cache disk``: first run (decodes, writes the cache) and second run (cache
    hit); start-up = from the call to the end of ``prepare`` (the header's last line);
(b) the same steps on resident synthetic tensors of the stored size (the compute-bound limit of this machine);
(c) what a user writes instead: torchvision ``ImageFolder`` + transforms + ``DataLoader`` with the machine's workers,
    the same model, SGD settings and milestones.

Targets: (a) cached throughput >= 0.9x (b); (a) faster than (c) at equal or better accuracy; second start >= 10x
sooner than the first. Then the data path alone at 224 px: ``--jpegs`` JPEGs of 500x375 under the ``finetune``
recipe's random-resized crops: decode-once + cached epochs against ``ImageFolder`` + ``DataLoader``, images/s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import cnnzoo
from cnnzoo.data.sources import Data, TensorSource


def make_digit_folder(root: Path, n: int, seed: int = 0) -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    rs = np.random.RandomState(seed)
    base = torch.from_numpy(bunch.images).float()[:, None] * (255 / 16)
    big = F.interpolate(base, size=(22, 22), mode="bilinear", align_corners=False)[:, 0].numpy()
    for i in range(n):
        k = rs.randint(len(big))
        canvas = np.zeros((28, 28), np.float32)
        dy, dx = rs.randint(0, 7, 2)
        canvas[dy : dy + 22, dx : dx + 22] = big[k]
        canvas = np.clip(canvas + rs.normal(0, 20, canvas.shape), 0, 255).astype(np.uint8)
        split = "val" if i % 5 == 0 else "train"
        path = root / split / str(bunch.target[k]) / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(canvas, "L").save(path)


def run_cnnzoo(folder: Path, out: Path, args, **extra) -> tuple[dict, float]:
    t0, marks = time.perf_counter(), {}

    def log(line: str) -> None:
        if line.startswith("plan:"):
            marks["start"] = time.perf_counter() - t0

    result = cnnzoo.train("resnet20", data=extra.pop("data", str(folder)), image_size=args.image_size,
                          epochs=args.epochs, overrides=["flip=false"], out=out, device="cpu", progress=False,
                          checkpoints=False, log=log, threads=args.threads, **extra)
    return result.summary, marks["start"]


def run_torchvision(folder: Path, args) -> dict:
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    size, pad = args.image_size, round(4 * args.image_size / 32)
    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    train_tf = T.Compose([T.Resize(size), T.RandomCrop(size, padding=pad), T.ToTensor(), norm])
    val_tf = T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), norm])
    train_set, val_set = ImageFolder(folder / "train", train_tf), ImageFolder(folder / "val", val_tf)
    workers = min(8, max(1, (os.cpu_count() or 1) - 1))
    loader = torch.utils.data.DataLoader(train_set, batch_size=128, shuffle=True, num_workers=workers,
                                         drop_last=True, persistent_workers=True)
    torch.manual_seed(0)
    net = cnnzoo.create_model("resnet20", num_classes=10)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    total = args.epochs * len(loader)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [round(total / 2), round(total * 3 / 4)], 0.1)
    seen, t0 = 0, time.perf_counter()
    for _ in range(args.epochs):
        net.train()
        for x, y in loader:
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            seen += len(y)
    seconds = time.perf_counter() - t0
    net.eval()
    hits = n = 0
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(val_set, batch_size=256, num_workers=workers):
            hits += (net(x).argmax(1) == y).sum().item()
            n += len(y)
    return {"images_per_s": seen / seconds, "final_val_top1": 100 * hits / n, "train_seconds": seconds}


def jpeg_case(root: Path, args) -> None:
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
    t0 = time.perf_counter()
    n = sum(len(y) for _, y in loader.epoch(0))
    cached = n / (time.perf_counter() - t0)
    tf = T.Compose([T.RandomResizedCrop(224, scale=(0.25, 1.0)), T.RandomHorizontalFlip(), T.ToTensor()])
    workers = min(8, max(1, (os.cpu_count() or 1) - 1))
    dl = torch.utils.data.DataLoader(ImageFolder(root / "train", tf), batch_size=64, shuffle=True,
                                     num_workers=workers)
    t0 = time.perf_counter()
    m = sum(len(y) for _, y in dl)
    streamed = m / (time.perf_counter() - t0)
    print(f"224 px, {len(data.train)} JPEGs 500x375 (data path alone, no model):")
    print(f"  cnnzoo decode once (stored short side {geo.resize}): {decode:.1f} s = {len(data.train) / decode:.0f} "
          f"img/s; cached epochs {cached:.0f} img/s")
    print(f"  ImageFolder + DataLoader ({workers} workers): {streamed:.0f} img/s; cached / ImageFolder = "
          f"{cached / streamed:.1f}x (an epoch after the first)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--jpegs", type=int, default=300, help="JPEGs of the 224-px case (0: skip it)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} cores, load {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["CNNZOO_CACHE"] = str(tmp / "cache")
        folder = tmp / "digits"
        make_digit_folder(folder, args.images)
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
        # a shared machine: (a, cached) and (b) once more, alternated; the ratio is taken round by round
        again, _ = run_cnnzoo(folder, tmp / "a3", args, cache="disk")
        synth2, _ = run_cnnzoo(folder, tmp / "b2", args, data=resident)
        ratios = [second["images_per_s"] / synth["images_per_s"], again["images_per_s"] / synth2["images_per_s"]]
        tv = run_torchvision(folder, args)
        print(f"{args.images} PNGs 28x28 ({n_train} train), resnet20 at {s} px, {args.epochs} epochs, batch 128")
        for name, row in (("(a) cnnzoo, folder, 1st run", first), ("(a) cnnzoo, folder, 2nd run", second),
                          ("(b) resident synthetic", synth), ("(a) cnnzoo, folder, 3rd run", again),
                          ("(b) resident synthetic, again", synth2), ("(c) ImageFolder+DataLoader", tv)):
            print(f"  {name:<30} {row['images_per_s']:7.0f} img/s  {row['train_seconds']:6.1f} s training  "
                  f"val top-1 {row['final_val_top1']:.2f}%")
        print(f"  start-up: 1st {start1:.2f} s, 2nd (cache hit) {start2:.2f} s -> {start1 / start2:.1f}x sooner")
        print(f"  cached / resident = {ratios[0]:.2f}, {ratios[1]:.2f} (two alternated rounds; target >= 0.9); "
              f"cnnzoo (3rd run) / ImageFolder = {again['images_per_s'] / tv['images_per_s']:.2f}x")
        print(f"  load average at the end: {os.getloadavg()}")
        if args.jpegs:
            jpeg_case(tmp / "jpegs", args)


if __name__ == "__main__":
    main()
