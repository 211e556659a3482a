"""What a training recipe is: ``Recipe``, a frozen row of SGD, schedule and augmentation settings (the rows
themselves, one per paper, are in ``recipe_table``).

Lengths and milestones carry their unit in the field name (``milestones_iterations``, ``milestones_epochs``,
``milestones_fraction`` of the run). Geometric augmentation is given in the paper's pixels at the paper's crop
(``crop_px``); at another input size every pixel count is scaled by ``image_size / crop_px``, so a recipe means the
same thing at 227, 32 or 16 pixels. ``parse_overrides`` turns ``--set field=value`` strings into typed values.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..data.augment import Geometry
from ..errors import UnknownNameError, UserError

SCHEDULES = ("constant", "multistep", "step", "plateau", "cosine", "poly", "exp")
AUGMENTS = ("none", "pad_crop", "random_crop", "scale_jitter", "random_resized_crop")
WARMUPS = ("linear", "constant")


@dataclass(frozen=True)
class Recipe:
    """One training protocol. ``source`` says where each number comes from."""

    name: str
    source: str
    # length: iterations (the paper counts SGD steps) or epochs; iterations win when both are set
    epochs: int | None = None
    iterations: int | None = None
    batch_size: int = 128
    # SGD
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    dampening: float = 0.0
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    aux_loss_weight: float = 0.3  # Szegedy et al. 2015 §5: auxiliary losses weighted by 0.3 (GoogLeNet only)
    # learning-rate schedule (see schedules.py)
    schedule: str = "multistep"
    gamma: float = 0.1
    milestones_iterations: tuple[int, ...] = ()
    milestones_epochs: tuple[float, ...] = ()
    milestones_fraction: tuple[float, ...] = ()  # of the whole run, e.g. (0.5, 0.75)
    step_epochs: float = 30.0  # "step": multiply by gamma every step_epochs
    power: float = 1.0  # "poly": lr * (1 - t/T) ** power
    plateau_patience_epochs: int = 5  # "plateau": epochs without val top-1 improvement before lr *= gamma
    plateau_threshold: float = 0.1  # an improvement smaller than this (top-1 percentage points) does not count
    plateau_max_reductions: int | None = None  # AlexNet/VGG: the lr was divided by 10 three times
    warmup_iterations: int = 0
    warmup_epochs: float = 0.0
    warmup: str = "linear"  # "linear": ramp from warmup_start_lr; "constant": hold warmup_start_lr (He et al.)
    warmup_start_lr: float = 0.0
    # augmentation, in the paper's pixels at the paper's crop
    augment: str = "pad_crop"
    crop_px: int = 32
    pad_px: int = 0  # pad_crop: pad each side, then crop crop_px
    pad_mode: str = "zeros"  # "zeros" (He et al.) or "reflect" (Zagoruyko & Komodakis)
    resize_px: int | None = None  # random_crop and evaluation: short side resized to this, then crop (None: crop_px)
    short_side_range_px: tuple[int, int] = (256, 480)  # scale_jitter: short side uniform in this range
    area_range: tuple[float, float] = (0.08, 1.0)  # random_resized_crop: fraction of the image area
    aspect_range: tuple[float, float] = (3 / 4, 4 / 3)  # random_resized_crop: width / height
    flip: bool = True
    pca_lighting: float = 0.0  # Krizhevsky et al. 2012 §4.1: std of the PCA colour noise (0.1)
    head_lr_mult: float = 1.0  # fine-tuning: the classifier's lr is lr x this (training/finetune.py)

    def __post_init__(self) -> None:
        checks = [
            (self.schedule in SCHEDULES, _one_of("schedule", self.schedule, SCHEDULES)),
            (self.augment in AUGMENTS, _one_of("augment", self.augment, AUGMENTS)),
            (self.warmup in WARMUPS, _one_of("warmup", self.warmup, WARMUPS)),
            (self.pad_mode in ("zeros", "reflect"), _one_of("pad_mode", self.pad_mode, ("zeros", "reflect"))),
            (self.epochs is not None or self.iterations is not None, "set epochs or iterations"),
            ((self.epochs is None or self.epochs > 0) and (self.iterations is None or self.iterations > 0),
             f"epochs and iterations must be at least 1 (got {self.epochs}, {self.iterations})"),
            (self.batch_size > 0, "batch_size must be positive"),
            (self.lr > 0 and math.isfinite(self.lr), f"lr must be a positive finite number, got {self.lr}"),
            (self.head_lr_mult > 0, "head_lr_mult must be positive"),
            (0 <= self.momentum < 1 and self.weight_decay >= 0, "need 0 <= momentum < 1 and weight_decay >= 0"),
            (not self.nesterov or (self.momentum > 0 and self.dampening == 0), "nesterov needs momentum, no dampening"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (0 < self.gamma <= 1 or self.schedule in ("constant", "cosine", "poly"), "gamma must be in (0, 1]"),
            (self.step_epochs > 0, "step_epochs must be positive"),
            (self.crop_px > 0 and self.pad_px >= 0, "crop_px must be positive, pad_px >= 0"),
            (all(0 <= f <= 1 for f in self.milestones_fraction), "milestones_fraction must lie in [0, 1]"),
            (0 < self.area_range[0] <= self.area_range[1] <= 1, "area_range must be 0 < lo <= hi <= 1"),
            (0 < self.aspect_range[0] <= self.aspect_range[1], "aspect_range must be 0 < lo <= hi"),
            (self.short_side_range_px[0] <= self.short_side_range_px[1], "short_side_range_px must be lo <= hi"),
            (self.resize_px is None or self.crop_px <= self.resize_px,
             f"crop_px {self.crop_px} is larger than the image it is cut from (resize_px {self.resize_px})"),
            (self.augment != "scale_jitter" or self.crop_px <= self.short_side_range_px[0],
             f"crop_px {self.crop_px} is larger than the smallest image it is cut from "
             f"(short_side_range_px {self.short_side_range_px[0]})"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"recipe {self.name!r}: {message}")

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def geometry(self, size: int) -> Geometry:
        """This recipe's augmentation at input side ``size``: the paper's pixels at the paper's crop, scaled."""
        scale = size / self.crop_px
        lo, hi = self.short_side_range_px
        return Geometry(
            policy=self.augment,
            size=size,
            pad=round(self.pad_px * scale) if self.pad_px else 0,
            pad_mode=self.pad_mode,
            resize=max(size, round((self.resize_px or self.crop_px) * scale)),
            short_side_range=(max(size, round(lo * scale)), max(size, round(hi * scale))),
            area_range=self.area_range,
            aspect_range=self.aspect_range,
            flip=self.flip,
            pca_lighting=self.pca_lighting,
        )

    def eval_geometry(self, size: int) -> Geometry:
        """The validation view at ``size``: short side resized as this recipe says, the centre crop."""
        return Geometry.eval_view(size, self.geometry(size).resize)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/``weights_only``-safe data (tuples become lists)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UserError(f"unknown recipe fields {', '.join(unknown)}")
        return cls(**{k: _coerce(k, v) for k, v in data.items()})


def _one_of(field: str, value: Any, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(value), choices, n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"{field} must be one of {', '.join(choices)}, got {value!r}{hint}"


# --- `--set field=value` -----------------------------------------------------------------------------------------

_FIELD_TYPES = typing.get_type_hints(Recipe)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _coerce(name: str, value: Any) -> Any:
    """``value`` (a string from the command line, or JSON data) as the type of field ``name``."""
    hint = _FIELD_TYPES[name]
    args = typing.get_args(hint)
    optional = isinstance(hint, types.UnionType) and type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", ""))):
        return None
    origin = typing.get_origin(base)
    try:
        if origin is tuple:
            item_type = typing.get_args(base)[0]
            items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
            result = tuple(_scalar(item_type, item) for item in items)
            fixed = typing.get_args(base)
            if fixed[-1] is not Ellipsis and len(result) != len(fixed):
                raise ValueError(f"needs {len(fixed)} values")
            return result
        return _scalar(base, value)
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad value {value!r} for recipe field {name} ({_type_name(hint)}): {exc}") from None


def _scalar(kind: type, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError("expected true or false")
    if kind is int:
        number = float(value)
        if not number.is_integer():
            raise ValueError("expected an integer")
        return int(number)  # accepts "64000" and "64e3"
    if kind is float:
        return float(value)
    return str(value)


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def parse_overrides(items: Iterable[str] | Mapping[str, Any]) -> dict[str, Any]:
    """``["lr=0.05", "milestones_epochs=30,60"]`` (or a mapping) -> typed ``{field: value}``, validated."""
    pairs: list[tuple[str, Any]] = []
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise UserError(f"--set expects field=value, got {item!r}")
            pairs.append((key.strip(), value.strip()))
    fields = [f.name for f in dataclasses.fields(Recipe) if f.name != "name"]
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; fields: {', '.join(fields)}"
            raise UnknownNameError(f"unknown recipe field {key!r}{hint}")
        result[key] = _coerce(key, value)
    return result


__all__ = ["AUGMENTS", "SCHEDULES", "Recipe", "parse_overrides"]
