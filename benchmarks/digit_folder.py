"""A real image folder for the folder benchmarks: 28x28 grey PNGs of scikit-learn's bundled 8x8 digits, upscaled,
shifted and noised, 10 classes, ``train/<class>/`` and ``val/<class>/``; deterministic, generated once and cached.

``digit_folder(n)`` returns the folder of ``n`` images (every fifth one in val/), generating it under
``$CNNZOO_BENCH_DATA`` (default: ``<tempdir>/cnnzoo-bench``) when it is not there yet. Each image: one of the 1,797
digits (8x8, 16 grey levels) bilinearly upscaled to 22x22, placed at a random offset of 0-6 px on a black 28x28
canvas, plus Gaussian noise of standard deviation 20 grey levels. Train and val images are drawn from disjoint
halves of the source digits (every fifth source digit feeds val/), so val top-1 measures generalisation to digits
never seen in training, not recognition of a re-noised copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

SIDE, DIGIT_SIDE, NOISE = 28, 22, 20.0


def cache_root() -> Path:
    return Path(os.environ.get("CNNZOO_BENCH_DATA") or Path(tempfile.gettempdir()) / "cnnzoo-bench")


def digit_folder(n: int, seed: int = 0, root: Path | None = None) -> Path:
    """The folder of ``n`` generated digits (cached: generated on the first call only)."""
    folder = (root or cache_root()) / f"digits{SIDE}-n{n}-s{seed}"
    done = folder / ".complete"
    if done.exists():
        return folder
    if folder.exists():  # an interrupted generation
        shutil.rmtree(folder)
    write_digits(folder, n, seed)
    done.write_text(f"{n} images, seed {seed}\n")
    return folder


def write_digits(folder: Path, n: int, seed: int) -> None:
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    base = torch.from_numpy(bunch.images).float()[:, None] * (255 / 16)
    big = F.interpolate(base, size=(DIGIT_SIDE, DIGIT_SIDE), mode="bilinear", align_corners=False)[:, 0].numpy()
    sources = {"val": np.arange(0, len(big), 5), "train": np.setdiff1d(np.arange(len(big)), np.arange(0, len(big), 5))}
    rs = np.random.RandomState(seed)
    for i in range(n):
        split = "val" if i % 5 == 0 else "train"
        k = sources[split][rs.randint(len(sources[split]))]
        canvas = np.zeros((SIDE, SIDE), np.float32)
        dy, dx = rs.randint(0, SIDE - DIGIT_SIDE + 1, 2)
        canvas[dy : dy + DIGIT_SIDE, dx : dx + DIGIT_SIDE] = big[k]
        canvas = np.clip(canvas + rs.normal(0, NOISE, canvas.shape), 0, 255).astype(np.uint8)
        path = folder / split / str(bunch.target[k]) / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(canvas, "L").save(path)


__all__ = ["digit_folder", "write_digits"]
