"""Streamed JPEG folders decoded on the GPU (``--decode gpu``): nvJPEG instead of PIL.

An H200 trains ResNet-50 in bf16 at about 3,000 images/s and AlexNet or ResNet-18 at 10,000+, while PIL decodes
about 600 JPEGs/s per core. With ``--decode gpu`` the loader workers only read each file's bytes and its header
(format, size, EXIF orientation: PIL opens it without decoding) and draw the sample's random view from the image's
size with the same seeded generator as the CPU path (``augment.draw_view``). The main process hands a batch's JPEGs
to nvJPEG in one call (``torchvision.io.decode_jpeg(list, device=...)``), turns each by its EXIF orientation, and cuts
its view on the device with the CPU path's own functions (``augment.apply_view`` / ``eval_view``: the same box, flip
and antialiased resize). So a sample's view is the CPU path's, but for pixel values where the CPU path decodes a
JPEG at 1/2 to 1/8 of its size (PIL's draft mode, for images shrunk to a fixed short side).

What nvJPEG does not take goes through PIL as on the CPU path: other formats (PNG, WebP, ...) and CMYK JPEGs in the
worker, a JPEG that nvJPEG refuses in the main process. An unreadable file is skipped and reported as on the CPU
path (label ``-1 - index``, dropped by the loader).

torchvision's image decoders are deprecated since torchvision 0.29 (superseded by TorchCodec, not a cnnzoo
dependency); its deprecation notice is silenced here, and a torchvision without ``decode_jpeg`` makes
``--decode gpu`` a one-line error, as does a run without CUDA.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import UserError
from .augment import Geometry, View, apply_view, draw_view, eval_view, rng
from .folder import decode_image_file, open_image
from .sources import FileSource

DECODE_MODES = ("cpu", "gpu")
EXIF_ORIENTATION = 0x0112
# Encoded = (payload, orientation, view, label, index): a JPEG's bytes (1-D uint8) with its EXIF orientation 1-8, or
# an image PIL decoded (C, H, W uint8, orientation 0: already turned); label -1 - index: the file is unreadable
Encoded = tuple[torch.Tensor, int, View, int, int]


def decode_jpeg_function() -> Any:
    """torchvision's batched JPEG decoder, or None where this torchvision has none."""
    import torchvision.io

    return getattr(torchvision.io, "decode_jpeg", None)


def check_gpu_decode(device: torch.device) -> None:
    """``--decode gpu`` refused in one line where it cannot run."""
    if device.type != "cuda":
        raise UserError(f"--decode gpu needs a CUDA device (nvJPEG decodes on the GPU); this run is on {device}: "
                        "use --decode cpu")
    if decode_jpeg_function() is None:
        raise UserError("--decode gpu: this torchvision has no decode_jpeg (its image decoders are deprecated since "
                        "0.29); use --decode cpu")


class EncodedFiles(Dataset):
    """The worker's share of ``--decode gpu``: a file's bytes (or PIL's image of a file nvJPEG cannot take), its
    orientation and its sample's view; items are ``(epoch, index)`` pairs, as ``FolderDataset``'s."""

    def __init__(self, source: FileSource, geo: Geometry, *, channels: int, train: bool, seed: int) -> None:
        self.source, self.geo, self.channels, self.train, self.seed = source, geo, channels, train, seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, item: tuple[int, int]) -> Encoded:
        epoch, index = item
        path = self.source.paths[index]
        try:
            with open_image(path) as im:
                jpeg = im.format == "JPEG" and im.mode in ("RGB", "L")
                orientation = im.getexif().get(EXIF_ORIENTATION, 1) if jpeg else 0
                width, height = im.size
            if jpeg:
                payload = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
                orientation = orientation if orientation in range(1, 9) else 1
                if orientation >= 5:  # turned by a quarter: the image's rows are the file's columns
                    width, height = height, width
            else:
                payload = decode_image_file(path, self.channels)
                height, width = payload.shape[-2:]
        except Exception:  # unreadable header, a decompression bomb, a file that vanished: skipped and reported
            return torch.zeros(0, dtype=torch.uint8), 0, View(False), -1 - index, index
        view = draw_view(self.geo, height, width, rng(self.seed, epoch, index)) if self.train else View(False)
        return payload, orientation, view, self.source.labels[index], index


def as_list(items: list[Encoded]) -> list[Encoded]:
    """The DataLoader's collate function for :class:`EncodedFiles`: images of different sizes stay a list."""
    return items


def orient(img: torch.Tensor, orientation: int) -> torch.Tensor:
    """A decoded (C, H, W) image turned by its EXIF orientation, as PIL's ``ImageOps.exif_transpose``."""
    if orientation in (5, 6, 7, 8):
        img = img.transpose(-2, -1)  # 5 transpose; 6 = transpose then flip columns; 7 = + both; 8 = + rows
        return {5: img, 6: img.flip(-1), 7: img.flip(-2, -1), 8: img.flip(-2)}[orientation]
    return {2: img.flip(-1), 3: img.flip(-2, -1), 4: img.flip(-2)}.get(orientation, img)


def nvjpeg(payloads: list[torch.Tensor], channels: int, device: torch.device) -> list[torch.Tensor | None]:
    """Decode JPEG bytes on ``device`` in one call; one file that fails fails the call, so then one at a time
    (None for a file the decoder refuses)."""
    from torchvision.io import ImageReadMode

    if not payloads:
        return []
    decode = decode_jpeg_function()
    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29's notice (see the module docstring)
        try:
            return list(decode(payloads, mode=mode, device=device))
        except RuntimeError:
            decoded: list[torch.Tensor | None] = []
            for payload in payloads:
                try:
                    decoded.append(decode(payload, mode=mode, device=device))
                except RuntimeError:
                    decoded.append(None)
            return decoded


def decode_batch(items: list[Encoded], *, geo: Geometry, channels: int, train: bool, device: torch.device,
                 paths: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of :class:`EncodedFiles` items -> (uint8 views (n, C, size, size) on ``device``, labels on the host,
    ``-1 - index`` for a file that could not be decoded, whose view is blank)."""
    jpegs = [k for k, (_, orientation, _, label, _) in enumerate(items) if orientation and label >= 0]
    decoded = dict(zip(jpegs, nvjpeg([items[k][0] for k in jpegs], channels, device)))
    views, labels = [], []
    for k, (payload, orientation, view, label, index) in enumerate(items):
        img = None
        if label >= 0:
            img = orient(decoded[k], orientation) if k in decoded and decoded[k] is not None else None
            if img is None:  # PIL's image from the worker, or a JPEG nvJPEG refused, decoded by PIL here
                try:
                    img = (payload if not orientation else decode_image_file(paths[index], channels)).to(device)
                except UserError:
                    label = -1 - index
        if img is None:
            views.append(torch.zeros(channels, geo.size, geo.size, dtype=torch.uint8, device=device))
        else:
            views.append(apply_view(img, geo, view) if train else eval_view(img, geo))
        labels.append(label)
    return torch.stack(views), torch.tensor(labels, dtype=torch.long)


__all__ = ["DECODE_MODES", "EncodedFiles", "as_list", "check_gpu_decode", "decode_batch", "decode_jpeg_function",
           "nvjpeg", "orient"]
