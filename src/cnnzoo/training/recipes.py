"""The papers' training recipes: ``Recipe``, a frozen row of SGD, schedule and augmentation settings, and
``RECIPES``, one row per paper citing where its numbers come from (``get_recipe(name)``, ``list_recipes()``;
``resolve_recipe(name, overrides)`` applies ``--set`` overrides).

Lengths and milestones carry their unit in the field name (``milestones_iterations``, ``milestones_epochs``,
``milestones_fraction`` of the run). Geometric augmentation is given in the paper's pixels at the paper's crop
(``crop_px``); at another input size every pixel count is scaled by ``image_size / crop_px``, so a recipe means the
same thing at 227, 32 or 16 pixels. ``parse_overrides`` turns ``--set field=value`` strings into typed values.

Every field's valid values are declared once, in ``FIELD_RANGES`` beside the class; ``Recipe.__post_init__`` checks
them and the relations between fields, so every way of making a recipe (``--set``, ``cnnzoo.train``, a run's
config.json on resume) is checked alike. Fields that say one thing together form ``GROUPS`` (the length: epochs or
iterations; the milestones; the warm-up): setting one with ``--set`` replaces the others of its group.
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
    # length: iterations (the paper counts SGD steps) or epochs, one of them
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
        for name, valid in FIELD_RANGES.items():
            problem = _out_of_range(name, getattr(self, name), valid)
            if problem:
                raise UserError(f"recipe {self.name!r}: {problem}")
        relations = [
            ((self.epochs is None) != (self.iterations is None),
             f"set one length, epochs or iterations (got epochs={self.epochs}, iterations={self.iterations})"),
            (not self.nesterov or (self.momentum > 0 and self.dampening == 0), "nesterov needs momentum, no dampening"),
            (self.pad_px < self.crop_px,
             f"pad_px {self.pad_px} must be less than crop_px {self.crop_px} (both in the paper's pixels at its "
             "crop): the crops would hold more padding than image"),
            (self.area_range[0] <= self.area_range[1], "area_range must be lo <= hi"),
            (self.aspect_range[0] <= self.aspect_range[1], "aspect_range must be lo <= hi"),
            (self.short_side_range_px[0] <= self.short_side_range_px[1], "short_side_range_px must be lo <= hi"),
            (self.resize_px is None or self.crop_px <= self.resize_px,
             f"crop_px {self.crop_px} is larger than the image it is cut from (resize_px {self.resize_px})"),
            (self.resize_px is None or self.resize_px <= MAX_RESIZE_RATIO * self.crop_px,
             f"resize_px {self.resize_px} is more than {MAX_RESIZE_RATIO}x crop_px {self.crop_px}"),
            (self.augment != "scale_jitter" or self.crop_px <= self.short_side_range_px[0],
             f"crop_px {self.crop_px} is larger than the smallest image it is cut from "
             f"(short_side_range_px {self.short_side_range_px[0]})"),
            (self.augment != "scale_jitter" or self.short_side_range_px[1] <= MAX_RESIZE_RATIO * self.crop_px,
             f"short_side_range_px {self.short_side_range_px[1]} is more than {MAX_RESIZE_RATIO}x crop_px "
             f"{self.crop_px}"),
        ]
        for ok, message in relations:
            if not ok:
                raise UserError(f"recipe {self.name!r}: {message}")

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def with_overrides(self, changes: Mapping[str, Any]) -> Recipe:
        """The user's ``--set`` applied: a field of a group in ``GROUPS`` replaces the group's other fields
        (``epochs=10`` on a recipe in iterations trains 10 epochs; ``milestones_epochs=30,60`` are the milestones,
        not two more beside the recipe's own)."""
        cleared = {f: _UNSET[f] for f in grouped(changes) if f not in changes}
        return self.replace(**cleared, **changes)

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


@dataclass(frozen=True)
class Range:
    """A number's valid values: from ``lo`` to ``hi``, an open end excluded (an infinite end is always open, so
    inf is never valid); NaN is never in range."""

    lo: float
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.lo if self.lo_open else value >= self.lo
        below = value < self.hi if self.hi_open or self.hi == math.inf else value <= self.hi
        return bool(above and below)

    def __str__(self) -> str:
        if self.hi == math.inf and self.lo == 0 and self.lo_open:
            return "a positive finite number"
        if self.hi == math.inf:
            return f"a finite number {'>' if self.lo_open else '>='} {_bound(self.lo)}"
        return f"in {'(' if self.lo_open else '['}{_bound(self.lo)}, {_bound(self.hi)}{')' if self.hi_open else ']'}"


def _bound(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


MAX_EPOCHS = 1_000_000
MAX_ITERATIONS = 1_000_000_000
MAX_PX = 16_384  # a pixel count in the paper's geometry
MAX_RESIZE_RATIO = 4  # an image resized to more than 4x the crop: the crops would see a sliver of it

# Each field's valid values, declared once: every entry point (``--set``, ``Recipe(...)`` and ``cnnzoo.train``, a run's
# config.json on resume) builds a Recipe, whose ``__post_init__`` checks them; a tuple field checks each item. The
# relations between fields (one length, pad below the crop...) are checked there too.
FIELD_RANGES: dict[str, Range | tuple[Any, ...]] = {
    "epochs": Range(1, MAX_EPOCHS),
    "iterations": Range(1, MAX_ITERATIONS),
    "batch_size": Range(1, 1_000_000),
    "lr": Range(0, lo_open=True),
    "momentum": Range(0, 1, hi_open=True),
    "nesterov": (False, True),
    "dampening": Range(0, 1),
    "weight_decay": Range(0),
    "label_smoothing": Range(0, 1, hi_open=True),
    "aux_loss_weight": Range(0),
    "schedule": SCHEDULES,
    "gamma": Range(0, 1, lo_open=True),
    "milestones_iterations": Range(1, MAX_ITERATIONS),
    "milestones_epochs": Range(0, MAX_EPOCHS, lo_open=True),
    "milestones_fraction": Range(0, 1, lo_open=True),
    "step_epochs": Range(0, MAX_EPOCHS, lo_open=True),
    "power": Range(0, lo_open=True),
    "plateau_patience_epochs": Range(1, MAX_EPOCHS),
    "plateau_threshold": Range(0, 100),
    "plateau_max_reductions": Range(0, 1000),
    "warmup_iterations": Range(0, MAX_ITERATIONS),
    "warmup_epochs": Range(0, MAX_EPOCHS),
    "warmup": WARMUPS,
    "warmup_start_lr": Range(0),
    "augment": AUGMENTS,
    "crop_px": Range(1, MAX_PX),
    "pad_px": Range(0, MAX_PX),
    "pad_mode": ("zeros", "reflect"),
    "resize_px": Range(1, MAX_PX),
    "short_side_range_px": Range(1, MAX_PX),
    "area_range": Range(0, 1, lo_open=True),
    "aspect_range": Range(0, lo_open=True),
    "flip": (False, True),
    "pca_lighting": Range(0),
    "head_lr_mult": Range(0, lo_open=True),
}

# fields that say one thing together: setting one (``Recipe.with_overrides``) replaces the others
GROUPS = (("epochs", "iterations"), ("milestones_iterations", "milestones_epochs", "milestones_fraction"),
          ("warmup_iterations", "warmup_epochs"))
_UNSET = {"epochs": None, "iterations": None, "milestones_iterations": (), "milestones_epochs": (),
          "milestones_fraction": (), "warmup_iterations": 0, "warmup_epochs": 0.0}


def grouped(fields: Iterable[str]) -> set[str]:
    """``fields`` with every field of their groups (``GROUPS``)."""
    fields = set(fields)
    return fields.union(*(group for group in GROUPS if fields.intersection(group)))


def _out_of_range(name: str, value: Any, valid: Range | tuple[Any, ...]) -> str | None:
    """Why ``value`` is not valid for field ``name``; None when it is (None itself: an unset optional field)."""
    if value is None and type(None) in typing.get_args(_FIELD_TYPES[name]):
        return None
    if isinstance(valid, tuple):
        if isinstance(value, bool) != isinstance(valid[0], bool) or value not in valid:
            return _one_of(name, value, valid)
        return None
    kind = _FIELD_TYPES[name]
    whole = kind is int or int in typing.get_args(kind)
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or (whole and not isinstance(item, int)):
            return f"{name} must be {'an integer' if whole else 'a number'}, got {item!r}"
        if item not in valid:
            each = "each of " if isinstance(value, tuple) else ""
            return f"{each}{name} must be {valid}, got {item:g}"
    return None


def _one_of(field: str, value: Any, choices: tuple[Any, ...]) -> str:
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"{field} must be one of {', '.join(map(str, choices))}, got {value!r}{hint}"


# --- `--set field=value` -----------------------------------------------------------------------------------------

_FIELD_TYPES = typing.get_type_hints(Recipe)
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")  # also --model-arg's


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
        if text in TRUE_WORDS or text in FALSE_WORDS:
            return text in TRUE_WORDS
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


# --- the table ---------------------------------------------------------------------------------------------------

_IMAGENET = dict(crop_px=224, resize_px=256)  # ImageNet models: short side 256, 224 crops, at eval the centre crop

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "alexnet",
            "Krizhevsky et al. 2012 §5 (SGD batch 128, momentum 0.9, wd 5e-4, lr 0.01 divided by 10 when the val "
            "error stopped improving, 3 times, ~90 epochs) and §4.1 (random 224 crops of 256x256 images + flips, PCA "
            "lighting std 0.1). Plateau patience 5 epochs is ours (the paper did it by hand).",
            epochs=90, batch_size=128, lr=0.01, weight_decay=5e-4, schedule="plateau", plateau_max_reductions=3,
            augment="random_crop", crop_px=224, resize_px=256, pca_lighting=0.1,
        ),
        Recipe(
            "zfnet",
            "Zeiler & Fergus 2014 §3 (batch 128, lr 1e-2 annealed by hand when the val error plateaus, momentum 0.9, "
            "70 epochs; 224 crops of the 256 image + flips). Weight decay is not stated there: AlexNet's 5e-4.",
            epochs=70, batch_size=128, lr=0.01, weight_decay=5e-4, schedule="plateau",
            augment="random_crop", **_IMAGENET,
        ),
        Recipe(
            "vgg",
            "Simonyan & Zisserman 2015 §3.1 (batch 256, momentum 0.9, wd 5e-4, lr 1e-2 divided by 10 three times "
            "when val accuracy stopped improving, 370k iterations = 74 epochs; 224 crops of images rescaled to S "
            "jittered in [256, 512], flips, RGB colour shift as AlexNet).",
            iterations=370_000, batch_size=256, lr=0.01, weight_decay=5e-4, schedule="plateau",
            plateau_max_reductions=3, augment="scale_jitter", short_side_range_px=(256, 512), pca_lighting=0.1,
            **_IMAGENET,
        ),
        Recipe(
            "googlenet",
            "Szegedy et al. 2015 §6 (momentum 0.9, lr decreased by 4% every 8 epochs, crops of 8-100% of the area "
            "with aspect 3/4-4/3; aux losses x0.3, §5) with the BVLC Caffe solver's lr 0.01, wd 2e-4, batch 32 and "
            "the Caffe replication's 60 epochs. Polyak averaging and photometric distortions are not applied.",
            epochs=60, batch_size=32, lr=0.01, weight_decay=2e-4, schedule="step", step_epochs=8, gamma=0.96,
            aux_loss_weight=0.3, augment="random_resized_crop", **_IMAGENET,
        ),
        Recipe(
            "resnet_imagenet",
            "He et al. 2016 §3.4 (batch 256, lr 0.1 divided by 10 when the error plateaus, 60e4 iterations, wd 1e-4, "
            "momentum 0.9, no dropout; short side jittered in [256, 480], 224 crops, flips, standard colour "
            "augmentation). The lecture slide's 'weight decay 1e-5' is a typo for the paper's 1e-4.",
            iterations=600_000, batch_size=256, lr=0.1, weight_decay=1e-4, schedule="plateau",
            augment="scale_jitter", short_side_range_px=(256, 480), pca_lighting=0.1, **_IMAGENET,
        ),
        Recipe(
            "resnet_cifar",
            "He et al. 2016 §4.2 (batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k, wd 1e-4, "
            "momentum 0.9; 4-pixel zero padding, random 32x32 crops, flips). ResNet-110's warm-up (lr 0.01 for "
            "~400 iterations): --set warmup_iterations=400 warmup=constant warmup_start_lr=0.01.",
            iterations=64_000, batch_size=128, lr=0.1, weight_decay=1e-4, milestones_iterations=(32_000, 48_000),
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "preact_cifar",
            "He et al. 2016b (Identity Mappings) §5: as ResNet CIFAR (batch 128, lr 0.1 /10 at 32k and 48k, 64k "
            "iterations, wd 1e-4, momentum 0.9, pad-4 crops + flips).",
            iterations=64_000, batch_size=128, lr=0.1, weight_decay=1e-4, milestones_iterations=(32_000, 48_000),
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "wrn_cifar",
            "Zagoruyko & Komodakis 2016 §3 and scripts/train_cifar.sh (SGD Nesterov, momentum 0.9, dampening 0, wd "
            "5e-4, batch 128, lr 0.1 x0.2 at epochs 60/120/160 of 200; reflect-pad 4, random crops, flips).",
            epochs=200, batch_size=128, lr=0.1, nesterov=True, weight_decay=5e-4, gamma=0.2,
            milestones_epochs=(60, 120, 160), augment="pad_crop", crop_px=32, pad_px=4, pad_mode="reflect",
        ),
        Recipe(
            "resnext_imagenet",
            "Xie et al. 2017 §4 and the official opts.lua (batch 256, lr 0.1 x0.1 every 30 epochs, 100 epochs, wd "
            "1e-4, momentum 0.9; fb.resnet.torch augmentation: scale/aspect crops, flips, PCA lighting 0.1).",
            epochs=100, batch_size=256, lr=0.1, weight_decay=1e-4, schedule="step", step_epochs=30,
            augment="random_resized_crop", pca_lighting=0.1, **_IMAGENET,
        ),
        Recipe(
            "resnext_cifar",
            "Xie et al. 2017 §5.2 and the official README (batch 128, 300 epochs, lr 0.1 x0.1 at 50% and 75% of "
            "training, wd 5e-4, momentum 0.9; pad-4 crops + flips).",
            epochs=300, batch_size=128, lr=0.1, weight_decay=5e-4, milestones_fraction=(0.5, 0.75),
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "stochastic_depth_cifar",
            "Huang et al. 2016 §4 and main.lua (500 epochs, batch 128, lr 0.1 -> 0.01 at 50% -> 0.001 at 75%, SGD "
            "Nesterov momentum 0.9, dampening 0, wd 1e-4; pad-4 crops + flips).",
            epochs=500, batch_size=128, lr=0.1, nesterov=True, weight_decay=1e-4, milestones_fraction=(0.5, 0.75),
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "fractalnet",
            "Larsson et al. 2017 §4 (SGD momentum 0.9, batch 100, lr 0.02, 400 epochs, lr divided by 10 each time "
            "the remaining epochs halve: 200/300/350/375; C10+ = pad-4 crops + flips). No weight decay is stated. "
            "Drop-path is the model's, active in train mode.",
            epochs=400, batch_size=100, lr=0.02, weight_decay=0.0, milestones_epochs=(200, 300, 350, 375),
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "densenet_cifar",
            "Huang et al. 2017 §4.2 (SGD Nesterov momentum 0.9 without dampening, batch 64, 300 epochs, lr 0.1 "
            "divided by 10 at 50% and 75% of the epochs, wd 1e-4; C10+ = pad-4 crops + flips).",
            epochs=300, batch_size=64, lr=0.1, nesterov=True, weight_decay=1e-4, milestones_fraction=(0.5, 0.75),
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "densenet_imagenet",
            "Huang et al. 2017 §4.2 (batch 256, 90 epochs, lr 0.1 divided by 10 at epochs 30 and 60, wd 1e-4, "
            "Nesterov momentum 0.9; fb.resnet.torch augmentation: scale/aspect crops, flips, PCA lighting 0.1).",
            epochs=90, batch_size=256, lr=0.1, nesterov=True, weight_decay=1e-4, milestones_epochs=(30, 60),
            augment="random_resized_crop", pca_lighting=0.1, **_IMAGENET,
        ),
        Recipe(
            "squeezenet",
            "Iandola et al. 2016, official solver.prototxt / train_val.prototxt (batch 512 = 32 x iter_size 16, "
            "base_lr 0.04, 'poly' power 1, 170k iterations, momentum 0.9, wd 2e-4; 227 crops of 256 images + flips).",
            iterations=170_000, batch_size=512, lr=0.04, weight_decay=2e-4, schedule="poly", power=1.0,
            augment="random_crop", crop_px=227, resize_px=256,
        ),
        Recipe(
            "nin",
            "Lin et al. 2014 §4.1 (minibatch 128, Krizhevsky's procedure: lr divided by 10 when val accuracy "
            "plateaus; CIFAR-10 with translation + flipping). The paper gives no lr, wd or length: AlexNet's lr "
            "1e-2 and wd 5e-4, and 120 epochs, are ours.",
            epochs=120, batch_size=128, lr=0.01, weight_decay=5e-4, schedule="plateau", plateau_max_reductions=3,
            augment="pad_crop", crop_px=32, pad_px=4,
        ),
        Recipe(
            "finetune",
            "cnnzoo's fine-tuning recipe (not from a paper), the default with --weights: SGD momentum 0.9, lr 0.01 "
            "(the classifier x10: head_lr_mult), cosine decay, wd 1e-4, batch 64, 10 epochs; random-resized crops "
            "of 25-100% of the area (224 crops of 256 images, scaled to the input size) and flips.",
            epochs=10, batch_size=64, lr=0.01, weight_decay=1e-4, schedule="cosine", head_lr_mult=10.0,
            augment="random_resized_crop", area_range=(0.25, 1.0), **_IMAGENET,
        ),
        Recipe(
            "quick",
            "cnnzoo's short recipe for small data sets (not from a paper): SGD Nesterov momentum 0.9, lr 0.1 with a "
            "1-epoch linear warm-up and cosine decay, wd 5e-4, label smoothing 0.1, batch 64, 12 epochs; random "
            "translations of 1/8 of the side (pad-4 crops at 32 px), no flips (digits and text are not symmetric).",
            epochs=12, batch_size=64, lr=0.1, nesterov=True, weight_decay=5e-4, label_smoothing=0.1,
            schedule="cosine", warmup_epochs=1.0, augment="pad_crop", crop_px=32, pad_px=4, flip=False,
        ),
    )
}


def list_recipes() -> list[str]:
    return sorted(RECIPES)


def get_recipe(name: str | Recipe) -> Recipe:
    if isinstance(name, Recipe):
        return name
    try:
        return RECIPES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(RECIPES), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; recipes: {', '.join(list_recipes())}"
        raise UnknownNameError(f"unknown recipe {name!r}{hint}") from None


def resolve_recipe(recipe: str | Recipe, overrides: Iterable[str] | Mapping[str, Any] = ()) -> Recipe:
    """A named recipe with ``--set`` overrides applied (and validated as a whole)."""
    base = get_recipe(recipe)
    changes = parse_overrides(overrides)
    return base.with_overrides(changes) if changes else base


__all__ = ["AUGMENTS", "FALSE_WORDS", "FIELD_RANGES", "GROUPS", "MAX_EPOCHS", "MAX_ITERATIONS", "RECIPES", "SCHEDULES",
           "TRUE_WORDS", "Range", "Recipe", "get_recipe", "grouped", "list_recipes", "parse_overrides", "resolve_recipe"]
