"""Augmentation as the papers describe it, computed on whole batches where the data allows.

Every geometric policy is a crop *box* in the source image that is resized to the model's input:

- ``pad_crop`` (He et al. 2016 §4.2, CIFAR): pad 4 px each side, random 32x32 crop = the evaluation view (short side
  resized, centre crop: a non-square image is cropped, never squashed) shifted by up to 4 px;
- ``random_crop`` (Krizhevsky et al. 2012 §4.1): short side resized to 256, random 224 crop;
- ``scale_jitter`` (Simonyan & Zisserman 2015 §3.1, He et al. 2016 §3.4): short side uniform in [256, 512], crop;
- ``random_resized_crop`` (Szegedy et al. 2015 §6): 8-100% of the area, aspect ratio 3/4-4/3;
- ``none``: the evaluation view (short side to ``resize``, centre crop).

Resident data sets (digits, CIFAR, synthetic) are augmented on the device, a batch at a time: integer pad-crops of
the evaluation view by one gather (as airbench does), other boxes by one ``grid_sample``. Image folders crop per sample in the loader
workers (images differ in size). Randomness comes from generators seeded by (seed, epoch, step) or
(seed, epoch, index), so a resumed run draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

# Krizhevsky et al. 2012 §4.1: PCA of ImageNet RGB pixels (values of fb.resnet.torch's transforms.lua, RGB in [0, 1]).
IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


def rng(*key: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded from a tuple of ints (seed, epoch, step/index): stateless, replayable.

    Batches on a GPU draw their random numbers there, so augmenting never waits for a host-to-device copy."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


@dataclass(frozen=True)
class Geometry:
    """An augmentation policy in pixels at this run's input side ``size`` (a recipe builds it:
    ``Recipe.geometry(size)``)."""

    policy: str
    size: int
    pad: int
    pad_mode: str
    resize: int  # eval (and random_crop): short side resized to this, then the centre ``size`` crop
    short_side_range: tuple[int, int]
    area_range: tuple[float, float]
    aspect_range: tuple[float, float]
    flip: bool
    pca_lighting: float

    @classmethod
    def eval_view(cls, size: int, resize: int) -> Geometry:
        """The evaluation view: short side resized to ``resize``, the centre ``size`` crop, nothing random."""
        return cls(policy="none", size=size, pad=0, pad_mode="zeros", resize=max(size, resize),
                   short_side_range=(size, size), area_range=(1.0, 1.0), aspect_range=(1.0, 1.0), flip=False,
                   pca_lighting=0.0)


def crop_boxes(
    geo: Geometry, n: int, height: int, width: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random boxes (top, left, box_height, box_width) in source pixels, and flip flags, drawn on the
    generator's device without any host synchronisation (``pad_crop`` shifts the evaluation view instead)."""
    dev = gen.device
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64, device=dev)
    flips = torch.rand(n, generator=gen, device=dev) < 0.5
    flips = flips if geo.flip else torch.zeros_like(flips)
    short = min(height, width)
    if geo.policy == "random_resized_crop":
        return _random_resized_boxes(geo, n, height, width, gen), flips
    if geo.policy == "none":
        return center_boxes(geo, n, height, width, dev), flips
    if geo.policy == "random_crop":
        side = torch.full((n,), geo.size * short / geo.resize, dtype=torch.float64, device=dev)
    else:  # scale_jitter: short side S uniform (integer) in the range, then a size x size crop
        lo, hi = geo.short_side_range
        side = geo.size * short / torch.randint(lo, hi + 1, (n,), generator=gen, device=dev).double()
    top = u[:, 0] * (height - side).clamp(min=0)
    left = u[:, 1] * (width - side).clamp(min=0)
    return torch.stack([top, left, side, side], 1), flips


def center_boxes(geo: Geometry, n: int, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The evaluation view: short side resized to ``geo.resize``, centre ``geo.size`` crop."""
    side = geo.size * min(height, width) / geo.resize
    box = [(height - side) / 2, (width - side) / 2, side, side]
    return torch.stack([torch.full((n,), v, dtype=torch.float64, device=device) for v in box], 1)


def _random_resized_boxes(geo: Geometry, n: int, height: int, width: int, gen: torch.Generator) -> torch.Tensor:
    """torchvision's RandomResizedCrop sampling, vectorised: the first of 10 tries that fits, else the centre."""
    dev, tries = gen.device, 10
    area = torch.empty(n, tries, dtype=torch.float64, device=dev).uniform_(*geo.area_range, generator=gen)
    log_lo, log_hi = math.log(geo.aspect_range[0]), math.log(geo.aspect_range[1])
    aspect = torch.empty(n, tries, dtype=torch.float64, device=dev).uniform_(log_lo, log_hi, generator=gen).exp()
    bw, bh = (area * height * width * aspect).sqrt().round(), (area * height * width / aspect).sqrt().round()
    fits = (bw > 0) & (bh > 0) & (bw <= width) & (bh <= height)
    first = fits.double().argmax(1, keepdim=True)  # index of the first try that fits (0 when none does)
    h, w = bh.gather(1, first)[:, 0], bw.gather(1, first)[:, 0]
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64, device=dev)
    top, left = (u[:, 0] * (height - h + 1)).floor(), (u[:, 1] * (width - w + 1)).floor()
    boxes = torch.stack([top, left, h, w], 1)
    center = center_boxes(replace(geo, resize=geo.size), n, height, width, dev)
    return torch.where(fits.any(1, keepdim=True), boxes, center)


# --- batched, on the device ----------------------------------------------------------------------------------------


def pad_crop_batch(x: torch.Tensor, geo: Geometry, gen: torch.Generator) -> torch.Tensor:
    """Integer pad-and-crop of a uint8 batch already at the input size: one gather, exact pixels."""
    n, c, h, w = x.shape
    shift = torch.randint(0, 2 * geo.pad + 1, (n, 2), generator=gen, device=gen.device).to(x.device)
    padded = F.pad(x, (geo.pad,) * 4) if geo.pad_mode == "zeros" else F.pad(x.float(), (geo.pad,) * 4, "reflect")
    rows = (shift[:, 0, None] + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (shift[:, 1, None] + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    return padded[batch, torch.arange(c, device=x.device).view(1, c, 1, 1), rows, cols]


def resample_batch(x: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, size: int, pad_mode: str) -> torch.Tensor:
    """Crop every image of the batch to its box (source pixels) and resize to ``size``: one ``grid_sample``."""
    n, _, h, w = x.shape
    top, left, bh, bw = boxes.to(x.device, torch.float32).unbind(1)
    sx, sy = bw / w, bh / h  # affine map from output [-1, 1] to source [-1, 1] (align_corners=False)
    tx, ty = (2 * left + bw) / w - 1, (2 * top + bh) / h - 1
    sx = torch.where(flips.to(x.device), -sx, sx)
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)
    grid = F.affine_grid(theta, [n, x.shape[1], size, size], align_corners=False)
    mode = "reflection" if pad_mode == "reflect" else "zeros"
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode=mode, align_corners=False)


def flip_batch(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    return torch.where(flips.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)


def resize_center_crop(x: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """Evaluation view of a batch (or one image): short side -> ``geo.resize``, centre ``geo.size`` crop."""
    h, w = x.shape[-2:]
    if (h, w) == (geo.size, geo.size) and geo.resize == geo.size:
        return x
    scale = geo.resize / min(h, w)
    nh, nw = max(geo.size, round(h * scale)), max(geo.size, round(w * scale))
    squeeze = x.dim() == 3
    y = x[None] if squeeze else x
    if (nh, nw) != (h, w):
        y = F.interpolate(y.float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - geo.size) // 2, (nw - geo.size) // 2
    y = y[..., top : top + geo.size, left : left + geo.size]
    return y[0] if squeeze else y


_PCA_RGB: dict[torch.device, torch.Tensor] = {}


def pca_lighting(x: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    """Krizhevsky et al. 2012 §4.1: add sum_i alpha_i lambda_i p_i to every RGB pixel, alpha_i ~ N(0, std).

    ``x`` is a float batch on the 0-255 scale; the ImageNet eigen-decomposition is on the 0-1 scale."""
    if std <= 0 or x.shape[1] != 3:
        return x
    if x.device not in _PCA_RGB:  # p_i * lambda_i as columns, copied to the device once
        basis = torch.tensor(IMAGENET_PCA_EIGVEC) * torch.tensor(IMAGENET_PCA_EIGVAL) * 255.0
        _PCA_RGB[x.device] = basis.to(x.device)
    alpha = torch.randn(x.shape[0], 3, generator=gen, device=gen.device).to(x.device) * std
    return x + (alpha @ _PCA_RGB[x.device].T).view(-1, 3, 1, 1)


def augment_batch(x: torch.Tensor, geo: Geometry, gen: torch.Generator) -> torch.Tensor:
    """A uint8 (n, C, H, W) batch on the device -> augmented float batch at ``geo.size`` (0-255 scale)."""
    n, _, h, w = x.shape
    if geo.policy == "pad_crop":  # the evaluation view (a non-square image is cropped, not squashed), shifted
        y = resize_center_crop(x, geo)
        y = pad_crop_batch(y, geo, gen) if geo.pad else y
        if geo.flip:
            y = flip_batch(y, torch.rand(n, generator=gen, device=gen.device) < 0.5)
        y = y.float()
    elif geo.policy == "none":
        y = resize_center_crop(x, geo).float()
    else:
        boxes, flips = crop_boxes(geo, n, h, w, gen)
        y = resample_batch(x, boxes, flips, geo.size, geo.pad_mode)
    return pca_lighting(y, geo.pca_lighting, gen)
