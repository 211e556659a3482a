"""Image-folder data: ``PATH/train/<class>/*`` and ``PATH/val/<class>/*``, or ``PATH/<class>/*`` split by a fraction.

Files are decoded by PIL through torchvision (JPEG incl. CMYK, PNG incl. palette/16-bit, GIF, WebP, BMP, TIFF,
PPM/PGM) and converted to the model's channels. What real folders hold besides good images:

- hidden files and folders (``.DS_Store``, ``._x.jpg`` AppleDouble files, ``.git/``, ``.ipynb_checkpoints/``) and
  files without an image extension are ignored, as torchvision's ``ImageFolder`` does;
- files whose header is not one of the formats above (zero bytes, random bytes, a text file or a FITS/PSD/TGA file
  named ``.jpg``: Pillow is only allowed the formats of ``IMAGE_FORMATS``, the mitigation of GHSA-whj4-6x5x-4v2j) and
  decompression bombs (more than Pillow's ``MAX_IMAGE_PIXELS``, 89.5 MP, declared in a small file) are skipped when
  the folder is scanned;
- files whose header is fine but whose data is not (truncated downloads) fail when decoded: the loader drops them
  from their batch, once, and training goes on (``loaders.FolderLoader``).

Training and validation see the same geometry: under ``pad_crop`` a non-square image is resized by its short side
and centre-cropped, then shifted (never squashed to a square).

Every skipped file is reported in a warning and in ``summary.json`` (``skipped_files``, ``skipped_count``). A class
folder without a single readable image, or a path that is not there, is an error before anything runs.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from ..errors import UserError
from .augment import Geometry, augment_image, eval_view, rng
from .sources import IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD, Data, FileSource, class_folder_names
from .sources import stratified_split, to_channels, warn_skipped

# Pillow's names of the formats of IMAGE_EXTENSIONS (JPEG also opens cameras' multi-picture MPO files; PPM covers
# PGM/PBM)
IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "DIB", "TIFF", "PPM")


def open_image(path: str | Path) -> Image.Image:
    """``Image.open`` restricted to ``IMAGE_FORMATS``; an image over Pillow's pixel limit is refused as a
    decompression bomb (Pillow itself only warns between 1x and 2x the limit)."""
    Image.init()  # registers every plugin: Image.open(formats=...) only looks formats up
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path, formats=IMAGE_FORMATS)


def load_folder(spec: str, *, in_channels: int, val_fraction: float, split_seed: int) -> Data:
    """The folder's layout (``train/`` + ``val/``, ``train/`` + ``test/``, ``train/`` alone or ``<class>/``
    folders, the last two split by ``val_fraction``), checked before anything is decoded: every misreading is a
    one-line error saying what was found and what is expected."""
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise UserError(f"--data {spec}: not 'digits', 'cluttered-digits', 'synthetic', 'cifar10:PATH', "
                        "'cifar100:PATH' or a folder")
    skipped: list[str] = []
    tree, held_out, layout = _layout(root)
    classes = _classes(tree)
    if held_out is not None:
        extra = sorted(set(class_folder_names(held_out)) - set(classes))
        if extra:
            raise UserError(f"{held_out}: classes {', '.join(extra)} are not in {tree}")
        train = _scan(tree, classes, skipped)
        val = _scan(held_out, classes, skipped)
    else:
        every = _scan(tree, classes, skipped)
        if len(every) == 0:
            raise UserError(f"{tree}: no readable images in its class folders {', '.join(classes)}")
        train_idx, val_idx = stratified_split(torch.tensor(every.labels), val_fraction, split_seed)
        train = FileSource([every.paths[i] for i in train_idx], [every.labels[i] for i in train_idx])
        val = FileSource([every.paths[i] for i in val_idx], [every.labels[i] for i in val_idx])
    if len(train) == 0:
        raise UserError(f"{tree}: no readable images in its class folders {', '.join(classes)}")
    empty = [name for label, name in enumerate(classes) if label not in set(train.labels)]
    if empty:
        raise UserError(f"{tree}: no readable training images in class folders {', '.join(empty)} (every class "
                        "needs at least one; remove or fill them)")
    if len(val) == 0:
        where = held_out if held_out is not None else f"{tree} split by --val-fraction {val_fraction}"
        raise UserError(f"{where}: the validation split is empty (put images in {held_out or tree}/<class>/, or "
                        "use a class with at least two images or a larger --val-fraction)")
    warn_skipped(skipped)
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if in_channels == 3 else ((0.449,), (0.226,))
    return Data(str(root), tuple(classes), train, val, in_channels, mean, std, skipped, layout=layout)


_EXPECTED = "expected PATH/train/<class>/<image> (+ PATH/val/ or PATH/test/) or PATH/<class>/<image>"


def _layout(root: Path) -> tuple[Path, Path | None, str]:
    """(training tree, held-out tree or None to split, the layout in words)."""
    train, val, test = root / "train", root / "val", root / "test"
    if train.is_dir():
        if val.is_dir():
            return train, val, "train/ + val/"
        if test.is_dir():
            return train, test, "train/ + test/ (test/ used as validation: no val/ folder)"
        return train, None, "train/ alone, split by --val-fraction"
    for name in ("val", "test"):
        if (root / name).is_dir():
            raise UserError(f"{root}: found {name}/ but no train/ folder; {_EXPECTED}")
    return root, None, "<class>/ folders, split by --val-fraction"


def _classes(tree: Path) -> list[str]:
    classes = class_folder_names(tree)
    if not classes:
        images = sum(1 for p in tree.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        found = f"{images} images but no class folders" if images else "an empty folder (no class folders)"
        raise UserError(f"{tree}: found {found}; {_EXPECTED}")
    if len(classes) < 2:
        raise UserError(f"{tree}: found one class folder ({classes[0]}); a classifier needs at least two "
                        f"({_EXPECTED})")
    return classes


def _scan(root: Path, classes: list[str], skipped: list[str]) -> FileSource:
    """Every image file under ``root/<class>/`` (recursively), sorted; unreadable ones go to ``skipped``."""
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if any(part.startswith(".") for part in rel.parts) or path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue  # .DS_Store, ._name.jpg (AppleDouble), .git/, notes.txt
            if not path.is_file():
                if path.is_symlink():  # a link to nothing (or a loop): an image that is not there
                    skipped.append(str(path))
                continue
            try:
                with open_image(path) as im:  # reads the header only
                    im.size  # noqa: B018
            except Exception:  # unidentified, not an allowed format, truncated header, decompression bomb, permission
                skipped.append(str(path))
                continue
            paths.append(str(path))
            labels.append(label)
    return FileSource(paths, labels)


def decode_image_file(path: str, channels: int, min_side: int | None = None) -> torch.Tensor:
    """uint8 (channels, H, W) through PIL and torchvision's ``pil_to_tensor``; EXIF orientation applied.

    ``min_side``: the image will be downscaled to this short side, so a JPEG may be decoded at 1/2, 1/4 or 1/8 of
    its size (PIL's draft mode, DCT scaling) as long as its short side stays at least ``min_side``.

    PIL's conversions cover L, LA, P (palette), RGBA, CMYK, YCbCr; 16-bit, 32-bit integer and 32-bit float
    grayscale are scaled by their white level (:func:`_wide_gray`; PIL would saturate them), or refused with a line
    where the values say no white level. torchvision.io's decoders are deprecated as of torchvision 0.29, so they are
    not used.
    """
    from torchvision.transforms.functional import pil_to_tensor

    try:
        with open_image(path) as im:
            if min_side is not None and im.format == "JPEG" and min(im.size) > 2 * min_side:
                scale = min_side / min(im.size)
                im.draft("RGB" if channels == 3 else "L", tuple(math.ceil(v * scale) for v in im.size))
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I", "F") or im.mode.startswith("I;"):
                img = torch.from_numpy(_wide_gray(np.asarray(im), im.mode))[None]
            else:
                img = pil_to_tensor(im.convert("RGB" if channels == 3 else "L"))
    except _NoWhiteLevel as exc:
        raise UserError(f"{path}: {exc}") from None
    except Exception as exc:  # truncated data, unsupported mode, bomb
        raise UserError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from None
    return to_channels(img, channels)


class _NoWhiteLevel(ValueError):
    """A wide grayscale image whose values do not say what white is."""


def _wide_gray(pixels: np.ndarray, mode: str) -> np.ndarray:
    """uint8 (H, W) of a 16-bit, 32-bit integer or 32-bit float grayscale image, scaled by its white level.

    PIL's own conversion to 8 bits saturates them (a float image of 0..1, TIFF's usual scale, becomes black), so:
    ``I;16*`` is 0..65535 (the high byte is kept); a float image (``F``) is 0..1 (x255) or, holding values above 1,
    0..255; a 32-bit integer image (``I``, which no format defines the white of) is 0..255 when its values fit, else
    0..65535. NaN, infinity, negative values or values beyond those scales are refused: no white level fits.
    """
    if mode.startswith("I;"):  # I;16, I;16B, I;16L, I;16N
        return (np.asarray(pixels, dtype=np.uint32) >> 8).astype(np.uint8)
    values = np.asarray(pixels, dtype=np.float64)
    kind = "float" if mode == "F" else "integer"
    if values.size == 0 or not np.isfinite(values).all():
        raise _NoWhiteLevel(f"a 32-bit {kind} image holding NaN or infinity; cannot decode it")
    low, high = float(values.min()), float(values.max())
    tops = (1.0, 255.0) if mode == "F" else (255.0, 65535.0)
    top = next((t for t in tops if high <= t), None)
    if low < 0 or top is None:
        raise _NoWhiteLevel(f"a 32-bit {kind} image with values {low:g} to {high:g}: no known white level "
                            f"(expected {' or '.join(f'0..{t:g}' for t in tops)}); save it as 8- or 16-bit")
    if top == 65535.0:  # as the 16-bit modes: the high byte
        return (values.astype(np.uint32) >> 8).astype(np.uint8)
    scale = 255.0 / top
    return np.clip(np.round(values * scale), 0, 255).astype(np.uint8)


class FolderDataset(Dataset):
    """Decodes and augments one file per item; randomness seeded by (seed, epoch, index) for exact replay.

    An item is an index (of ``self.epoch``) or an ``(epoch, index)`` pair: the loader's persistent workers get the
    epoch with every index, since their copies of the dataset never see ``self.epoch`` change."""

    def __init__(self, source: FileSource, geo: Geometry, *, channels: int, train: bool, seed: int) -> None:
        self.source, self.geo, self.channels, self.train, self.seed = source, geo, channels, train, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        """The image and its label; a file that fails to decode gives a blank image labelled ``-1 - index``, which
        the loader drops from the batch and reports (an exception here would end the epoch for every file)."""
        epoch, index = item if isinstance(item, tuple) else (self.epoch, item)
        # JPEG draft decoding only where the image is then shrunk to a fixed short side (not random-resized crops,
        # whose boxes are drawn in the full image's pixels)
        shrink = not self.train or self.geo.policy in ("pad_crop", "none", "random_crop")
        try:
            img = decode_image_file(self.source.paths[index], self.channels, self.geo.resize if shrink else None)
        except UserError:
            return torch.zeros(self.channels, self.geo.size, self.geo.size, dtype=torch.uint8), -1 - index
        img = augment_image(img, self.geo, rng(self.seed, epoch, index)) if self.train else eval_view(img, self.geo)
        return img.contiguous(), self.source.labels[index]


__all__ = ["IMAGE_FORMATS", "FolderDataset", "decode_image_file", "load_folder", "open_image",
           "warn_skipped"]
