"""Augmentation as the papers describe it, computed on whole batches where the data allows.

Every geometric policy is a crop *box* in the source image that is resized to the model's input:

- ``pad_crop`` (He et al. 2016 §4.2, CIFAR): pad 4 px each side, random 32x32 crop = the evaluation view (short side
  resized, centre crop: a non-square image is cropped, never squashed) shifted by up to 4 px;
- ``random_crop`` (Krizhevsky et al. 2012 §4.1): short side resized to 256, random 224 crop;
- ``scale_jitter`` (Simonyan & Zisserman 2015 §3.1, He et al. 2016 §3.4): short side uniform in [256, 512], crop;
- ``random_resized_crop`` (Szegedy et al. 2015 §6): 8-100% of the area, aspect ratio 3/4-4/3;
- ``none``: the evaluation view (short side to ``resize``, centre crop).

Resident data sets (digits, CIFAR, synthetic) are augmented on the device, a batch at a time: integer pad-crops of
the evaluation view by one gather (as airbench does), flips by one ``where``. Image folders crop per sample in the
loader workers (images differ in size), or on the GPU after nvJPEG decoded them (``gpu_decode``). Every path cuts a
box with the same function, ``crop_view`` (integer box, bilinear resize antialiased when it shrinks, as torchvision's
``resized_crop``), so a resident data set, a streamed folder and a GPU-decoded one give the same view of an image for
the same box. Per sample, the random choices are drawn first (``draw_view``, from the image's size alone) and applied
after (``apply_view``). Randomness comes from generators seeded by (seed, epoch, step) or (seed, epoch, index), so a
resumed run draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

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


def box_pixels(box: Sequence[float]) -> tuple[int, int, int, int]:
    """A crop box (top, left, height, width) in source pixels, rounded to whole pixels (at least one)."""
    top, left, height, width = box
    return round(top), round(left), max(1, round(height)), max(1, round(width))


def crop_view(img: torch.Tensor, box: Sequence[float], size: int, flip: bool = False) -> torch.Tensor:
    """One image (C, H, W) cut to ``box`` and resized to ``size`` x ``size``: bilinear, antialiased when it shrinks
    (torchvision's ``resized_crop``; uint8 in, uint8 out), mirrored on request. Every path's view of a box."""
    from torchvision.transforms.v2 import functional as TF

    view = TF.resized_crop(img, *box_pixels(box), [size, size], antialias=True)
    return TF.horizontal_flip(view) if flip else view


def resample_batch(x: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, size: int) -> torch.Tensor:
    """Every image of the batch cut to its box (source pixels) and resized to ``size`` by ``crop_view``, as the
    per-sample paths do (one resize per image: the boxes differ). ``boxes`` and ``flips`` are read on the host: drawn
    there (``ResidentLoader``), reading them costs no device sync."""
    views = [crop_view(img, box, size, flip) for img, box, flip in zip(x, boxes.tolist(), flips.tolist())]
    return torch.stack(views).float()


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


def augment_batch(x: torch.Tensor, geo: Geometry, gen: torch.Generator,
                  box_gen: torch.Generator | None = None) -> torch.Tensor:
    """A uint8 (n, C, H, W) batch on the device -> augmented float batch at ``geo.size`` (0-255 scale).

    ``box_gen``: the generator of the crop boxes and flips of the box policies (default ``gen``); a CPU one keeps
    a GPU batch from waiting for the device to read its boxes."""
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
        boxes, flips = crop_boxes(geo, n, h, w, box_gen or gen)
        y = resample_batch(x, boxes, flips, geo.size)
    return pca_lighting(y, geo.pca_lighting, gen)


# --- per sample: the random choices, then their application ----------------------------------------------------------


class View(NamedTuple):
    """One sample's random choices: a mirror flip, and the crop box (``pad_crop``: the shift, top and left, of the
    evaluation view inside its padding; ``none``: nothing)."""

    flip: bool
    box: tuple[int, ...] = ()


def draw_view(geo: Geometry, height: int, width: int, gen: torch.Generator) -> View:
    """The choices of one training sample of ``height`` x ``width`` pixels (the flip first, then the box)."""
    flip = geo.flip and bool(torch.rand(1, generator=gen) < 0.5)
    if geo.policy == "pad_crop":
        return View(flip, tuple(torch.randint(0, 2 * geo.pad + 1, (2,), generator=gen).tolist()))
    if geo.policy == "none":
        return View(flip)
    box, _ = crop_boxes(geo, 1, height, width, gen)
    return View(flip, box_pixels(box[0].tolist()))


def eval_view(img: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """One image's evaluation view (short side resized, centre crop) as uint8."""
    return resize_center_crop(img, geo).round().clamp(0, 255).to(torch.uint8)


def apply_view(img: torch.Tensor, geo: Geometry, view: View) -> torch.Tensor:
    """One uint8 image (C, H, W, any device) -> its augmented uint8 (C, size, size) under ``view``."""
    from torchvision.transforms.v2 import functional as TF

    if geo.policy == "pad_crop":  # the evaluation view (short side, centre crop), shifted by up to ``pad`` pixels
        padding_mode = "constant" if geo.pad_mode == "zeros" else "reflect"
        img = TF.pad(eval_view(img, geo), [geo.pad] * 4, padding_mode=padding_mode)
        top, left = view.box
        img = img[:, top : top + geo.size, left : left + geo.size]
    elif geo.policy == "none":
        img = eval_view(img, geo)
    else:
        return crop_view(img, view.box, geo.size, view.flip)
    return TF.horizontal_flip(img) if view.flip else img


def augment_image(img: torch.Tensor, geo: Geometry, gen: torch.Generator) -> torch.Tensor:
    """One uint8 image -> augmented uint8 (C, size, size); the per-sample twin of ``augment_batch``."""
    return apply_view(img, geo, draw_view(geo, img.shape[-2], img.shape[-1], gen))
