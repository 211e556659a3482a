"""What a data set is (``Data`` with resident or file splits), and the sources that need no files: digits, synthetic.

Small data sets (digits, CIFAR, synthetic) are uint8 tensors that the loader keeps resident on the device; image
folders are file lists decoded by loader workers. Every image is converted to the model's channels (grayscale
repeated, alpha dropped, palette/CMYK to RGB, RGB to luminance for 1 channel). Train/validation splits drawn here use
a fixed seed (``split_seed``), independent of the run's seed.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, what PIL's convert("L") uses
# line breaks, tabs, escapes, and the bytes of a file name that are not UTF-8: what a one-line name cannot hold
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass
class TensorSource:
    """A resident split: uint8 images (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class FileSource:
    """A split of image files, decoded on demand."""

    paths: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Data:
    """What a run trains and validates on, and how its inputs are normalised (saved with every checkpoint)."""

    spec: str
    classes: tuple[str, ...]
    train: TensorSource | FileSource
    val: TensorSource | FileSource
    in_channels: int
    mean: tuple[float, ...]  # per channel, images scaled to [0, 1]
    std: tuple[float, ...]
    skipped_files: list[str] = field(default_factory=list)
    layout: str = ""  # an image folder's layout in words (how train and validation were found)
    held: str = "resident"  # resident (uint8 on the device) | cache (decoded once, from disk) | streamed (files)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def stratified_split(labels: torch.Tensor, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and val indices: ``val_fraction`` of every class (at least one when the class has two), fixed seed."""
    gen = torch.Generator().manual_seed(seed)
    train, val = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        k = min(len(idx) - 1, max(1, round(len(idx) * val_fraction))) if len(idx) > 1 else 0
        val.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def to_channels(img: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (..., C, H, W) with C in 1-4 -> ``channels`` (1 or 3): alpha dropped, gray repeated, RGB to luma."""
    c = img.shape[-3]
    if c in (2, 4):  # LA / RGBA: drop alpha (as PIL's convert does)
        img, c = img[..., : c - 1, :, :], c - 1
    if c == channels:
        return img
    if c == 1:
        return img.expand(*img.shape[:-3], channels, *img.shape[-2:]).contiguous()
    if channels == 1:
        weights = torch.tensor(_LUMA).view(3, 1, 1)
        return (img.float() * weights).sum(-3, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise UserError(f"cannot convert {c}-channel images to {channels} channels")


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of a uint8 (N, C, H, W) set, on the [0, 1] scale."""
    x = images.transpose(0, 1).reshape(images.shape[1], -1).double() / 255.0
    std = x.std(1).clamp(min=1e-3)
    return tuple(round(v, 6) for v in x.mean(1).tolist()), tuple(round(v, 6) for v in std.tolist())


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 (N, C, H, W) set to size x size (bilinear; antialiased when shrinking)."""
    if images.shape[-2:] == (size, size):
        return images
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8)


def digits(*, image_size: int, in_channels: int = 3, val_fraction: float = 0.2, split_seed: int = 0) -> Data:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; no download), resized once."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float()[:, None]  # values 0..16
    images = (images * (255.0 / 16.0)).round().to(torch.uint8)
    labels = torch.from_numpy(bunch.target).long()
    images = to_channels(resize_images(images, image_size), in_channels)
    train_idx, val_idx = stratified_split(labels, val_fraction, split_seed)
    train = TensorSource(images[train_idx].contiguous(), labels[train_idx])
    mean, std = channel_stats(train.images)
    return Data(
        spec="digits",
        classes=tuple(str(d) for d in range(10)),
        train=train,
        val=TensorSource(images[val_idx].contiguous(), labels[val_idx]),
        in_channels=in_channels,
        mean=mean,
        std=std,
    )


def synthetic(count: int, *, image_size: int, in_channels: int = 3, num_classes: int = 10) -> Data:
    """Random uint8 images and labels (fixed seed): for smoke tests and benchmarks. Val has ``count // 4`` images."""
    gen = torch.Generator().manual_seed(1234)
    n_val = max(2, count // 4)
    shape = (count + n_val, in_channels, image_size, image_size)
    images = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, num_classes, (count + n_val,), generator=gen)
    return Data(
        spec=f"synthetic:{count}",
        classes=tuple(str(c) for c in range(num_classes)),
        train=TensorSource(images[:count], labels[:count]),
        val=TensorSource(images[count:], labels[count:]),
        in_channels=in_channels,
        mean=(0.5,) * in_channels,
        std=(0.289,) * in_channels,  # uniform on [0, 1]
    )


def warn_skipped(skipped: list[str]) -> None:
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        warnings.warn(f"skipped {len(skipped)} unreadable files: {shown}", stacklevel=2)


def check_class_names(names: list[str] | tuple[str, ...], where: str) -> tuple[str, ...]:
    """``names`` if every one is a non-empty string without control characters (a line break would split a
    printed line of ``predict`` or the confusion matrix) and none repeats; else a one-line error naming ``where``."""
    for name in names:
        if not isinstance(name, str) or not name:
            raise UserError(f"{where}: class name {name!r} is not a non-empty string")
        if _UNPRINTABLE.search(name):
            raise UserError(f"{where}: class name {ascii(name)} holds a line break, another control character or "
                            "bytes that are not UTF-8; rename it")
    seen: set[str] = set()
    twice = [n for n in names if n in seen or seen.add(n)]
    if twice:
        raise UserError(f"{where}: class name {twice[0]!r} appears more than once")
    return tuple(names)


def class_folder_names(root: Path) -> list[str]:
    """Sorted class folders under ``root``; hidden folders (``.git``, ``.ipynb_checkpoints``) are not classes. A
    folder name with a line break (or another control character) is refused: it could not be printed as a class."""
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return list(check_class_names(names, str(root)))
