"""``load_data(spec, ...)``: the ``--data`` dispatcher, shared by training and evaluation.

``digits`` | ``cluttered-digits`` | ``synthetic[:N]`` | ``cifar10:PATH`` | ``cifar100:PATH`` | an image-folder ``PATH``.
"""

from __future__ import annotations

from ..errors import UserError
from .cifar import load_cifar
from .cluttered import SPEC as CLUTTERED, cluttered_digits
from .folder import load_folder
from .sources import Data, digits, synthetic


def load_data(
    spec: str,
    *,
    image_size: int,
    in_channels: int = 3,
    num_classes: int = 10,
    val_fraction: float = 0.2,
    download: bool = False,
    split_seed: int = 0,
) -> Data:
    """Parse ``--data`` and load it. ``num_classes`` is only used by ``synthetic``."""
    check_val_fraction(val_fraction)
    check_data_spec(spec)
    kind, _, arg = spec.partition(":")
    if spec == "digits":
        return digits(image_size=image_size, in_channels=in_channels, val_fraction=val_fraction, split_seed=split_seed)
    if spec == CLUTTERED:
        return cluttered_digits(image_size=image_size, in_channels=in_channels)
    if kind == "synthetic":
        count = _positive_int(arg, "synthetic:N") if arg else 512
        return synthetic(count, image_size=image_size, in_channels=in_channels, num_classes=num_classes)
    if kind in ("cifar10", "cifar100") and arg:
        return load_cifar(kind, arg, in_channels=in_channels, download=download)
    return load_folder(spec, in_channels=in_channels, val_fraction=val_fraction, split_seed=split_seed)


SPECS = "digits, cluttered-digits, synthetic[:N], cifar10:PATH, cifar100:PATH or an image folder PATH"


def check_data_spec(spec: object) -> str:
    """``spec`` if it can name a data set: an empty (or blank) ``--data`` names none, it is not the default (the
    current folder is no image folder either); ``synthetic:``, ``cifar10:`` with nothing after the colon, and a NUL
    character, are refused too. One line each."""
    if not isinstance(spec, str):
        raise UserError(f"--data must be a string ({SPECS}), got {type(spec).__name__}")
    if not spec.strip():
        raise UserError(f"--data {spec!r}: empty; use {SPECS}")
    if "\0" in spec:
        raise UserError(f"--data {spec!r}: holds a NUL character")
    kind, colon, arg = spec.partition(":")
    if colon and not arg and kind in ("synthetic", "cifar10", "cifar100"):
        what = "N, the number of images" if kind == "synthetic" else "PATH, the folder of its batches"
        raise UserError(f"--data {spec}: nothing after the colon; give {what} ({kind}:...)")
    return spec


def check_val_fraction(val_fraction: float) -> None:
    if not 0 < val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {val_fraction}")


def _positive_int(text: str, what: str) -> int:
    if not text.isdigit() or int(text) < 2:
        raise UserError(f"{what}: N must be an integer >= 2, got {text!r}")
    return int(text)
