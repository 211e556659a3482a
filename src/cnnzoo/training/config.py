"""A run's settings as one frozen value, ``RunConfig``: built by the CLI or ``cnnzoo.train``, reloaded on resume.

``configure(model, ...)`` resolves what can be resolved before any data is read: the model's identity, the recipe
(named; else ``finetune`` with ``--weights``; else on the built-in digits ``quick`` at 16 px, whatever the length;
else the model's own; with ``--set`` overrides and the ``--batch-size`` shortcut), the input side and the seed.
A length never changes the recipe, its input side or its augmentation. ``configure(resume=DIR, ...)`` reloads the
run's own settings from ``DIR/config.json`` and takes only the settings of this session (length, device, precision,
workers, progress...) from the call; the thread count is the run's own unless given (another one is said: the
resumed run is then not bit-identical); an explicitly different model, data, recipe, size or seed is refused, since
the run would silently become another run. Every number has its valid range (``RUN_RANGES``, ``MODEL_ARG_RANGES``;
the recipe's: ``recipes.FIELD_RANGES``), checked whoever builds a RunConfig. The one rule for the schedule on
resume: ``--set`` and ``--batch-size`` are refused; another length (``--epochs N``) re-plans it, and the trainer prints
the change (``schedules.replanned``).

``config.json`` holds ``RunConfig.to_dict()`` and what the trainer learnt from the data (classes, normalisation,
steps per epoch, the resolved device and precision); ``RunConfig.from_dict`` reads the first part back.

``--model-arg NAME=VALUE`` (``parse_model_args``): a family's constructor options from the command line, typed and
validated. The valid names are the keyword options of the model's class (``ResNet(dropout=..., drop_path_rate=...)``),
less what the registry fixes for the name (its spec) and what the trainer sets (classes, channels). A value is
converted to the option's type (from its annotation, else from its default); a wrong name or value is a one-line
error naming the valid options.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import typing
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import CheckpointError
from ..data.cache import CACHE_MODES
from ..data.cluttered import SIDE as CLUTTERED_SIDE, SPEC as CLUTTERED
from ..data.gpu_decode import DECODE_MODES
from ..data.load import check_data_spec, check_val_fraction
from ..device import AMP_MODES
from ..errors import UnknownNameError, UserError
from ..registry import ModelInfo, changed_spec, model_entry, model_info, smallest_side
from .recipes import FALSE_WORDS, MAX_EPOCHS, TRUE_WORDS, Range, Recipe, parse_overrides, resolve_recipe
from .stopping import POLICIES

QUICK_DIGITS_SIZE = 16  # the quick recipe's input side on the 8x8 digits
# the built-in sets that train with the quick recipe by default, at these sides
QUICK_DATA_SIZE = {"digits": QUICK_DIGITS_SIZE, CLUTTERED: CLUTTERED_SIDE}
MAX_IMAGE_SIDE = 2**20  # a guard against sizes that overflow; the memory check refuses far less (check_memory)
# the valid values of RunConfig's numbers, checked whoever builds one (the CLI, ``cnnzoo.train``, a resumed run)
RUN_RANGES = {
    "epochs": Range(1, MAX_EPOCHS),
    "seed": Range(0, 2**63 - 1),  # torch's and Python's generators take any 64-bit seed; a tensor holds it signed
    "workers": Range(0, 256),
    "threads": Range(1, 1024),
    "image_size": Range(1, MAX_IMAGE_SIDE),
}
# what a session may change when it resumes a run (everything else is the run's own)
SESSION_FIELDS = ("epochs", "device", "amp", "channels_last", "compile", "download", "workers", "checkpoints",
                  "progress", "sync_bn", "on_nonfinite", "threads", "deterministic", "tf32", "decode")


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs (``cnnzoo train``'s flags, ``cnnzoo.train``'s keywords), as data."""

    model: str  # a registered name, or the class name of a module given to ``cnnzoo.train``
    recipe: Recipe  # resolved: the named recipe with every override applied
    image_size: int  # input side in pixels
    data: str = "digits"  # ``--data``: digits | cluttered-digits | synthetic[:N] | cifar10:PATH | cifar100:PATH | PATH
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)  # create_model options, e.g. {"dropout": 0.3}
    epochs: int | None = None  # None: the recipe's length (resuming: the run's own length)
    seed: int = 0  # weights, shuffling, augmentation, dropout: same seed and layout, same run on the CPU
    val_fraction: float = 0.2  # validation share of digits and single-tree folders
    out: str | None = None  # run directory; None: runs/<model>-<time>
    resume: str | None = None  # a run directory (or its last.pt) this run continues
    device: str = "auto"  # auto: CUDA when available
    amp: str | None = None  # off | bf16 | fp16; None: bf16 on CUDA, off on the CPU
    channels_last: bool | None = None  # None: measured (training/layout.py); a resumed run keeps its own
    compile: bool = False
    download: bool = False  # CIFAR only
    workers: int | None = None  # image-folder decoding processes; None: this process's share of the cores - 1
    checkpoints: bool = True
    progress: bool | None = None  # None: only on a terminal
    sync_bn: bool = False  # under torchrun on CUDA: batch-norm statistics over the global batch
    on_nonfinite: str = "stop"  # stop | skip a step whose loss is inf/NaN
    overwrite: bool = False  # ``out`` may hold an earlier run: its files are removed first (else: refused)
    recipe_set: tuple[str, ...] = ()  # the recipe fields the user set (--set): taken as written, never rescaled
    cache: str = "auto"  # image folders: auto | memory | disk | off (see data/cache.py)
    # CPU threads (torch.set_num_threads); None: torch's default, every core, which won on an idle 2-core Xeon (AMX)
    # for resnet20 at batch 128: 1.73-1.85x one thread's rate at 16 and 32 px in NCHW, 1.41-1.73x in channels-last
    threads: int | None = None
    weights: str | None = None  # fine-tuning: start from these weights (training/finetune.py)
    freeze: str | None = None  # "backbone": train the classifier only
    deterministic: bool = False  # deterministic algorithms, cuDNN benchmark off (a bit-exact GPU resume needs it)
    tf32: bool = True  # CUDA: TF32 tensor cores for fp32 matmuls and convolutions
    decode: str = "cpu"  # a streamed folder's JPEGs: decoded by PIL in the workers (cpu) or by nvJPEG (gpu)
    recipe_reason: str | None = None  # why this recipe, when none was named: digits | model | weights

    def __post_init__(self) -> None:
        for name, valid in RUN_RANGES.items():
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value not in valid):
                flag = "--" + name.replace("_", "-")
                bound = (f"at least {valid.lo:,}" if isinstance(value, int) and value < valid.lo else
                         f"at most {valid.hi:,}" if isinstance(value, int) and value > valid.hi else "an integer")
                raise UserError(f"{flag} must be {bound}, got {value!r}")
        for name in ("out", "resume"):
            if getattr(self, name) is not None and not str(getattr(self, name)).strip():
                raise UserError(f"--{name} '': name a run directory")
        check_model_args(self.model_kwargs)
        if self.amp is not None and self.amp not in AMP_MODES:
            raise UserError(f"--amp must be off, bf16 or fp16, got {self.amp!r}")
        if self.on_nonfinite not in POLICIES:
            raise UserError(f"--on-nonfinite must be one of {', '.join(POLICIES)}, got {self.on_nonfinite!r}")
        check_val_fraction(self.val_fraction)
        if self.cache not in CACHE_MODES:
            raise UserError(f"--cache must be one of {', '.join(CACHE_MODES)}, got {self.cache!r}")
        if self.freeze is not None and self.freeze != "backbone":
            raise UserError(f"--freeze must be 'backbone', got {self.freeze!r}")
        if self.freeze is not None and self.weights is None:
            raise UserError("--freeze backbone needs --weights (a backbone to keep)")
        if self.decode not in DECODE_MODES:
            raise UserError(f"--decode must be one of {', '.join(DECODE_MODES)}, got {self.decode!r}")

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (the recipe as its own dict)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**data, "recipe": self.recipe.to_dict(), "model_kwargs": dict(self.model_kwargs),
                "recipe_set": list(self.recipe_set)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """The settings of ``data`` (e.g. a run's config.json); the facts the trainer added are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["recipe"] = Recipe.from_dict(data["recipe"])
        values["model_kwargs"] = dict(values.get("model_kwargs") or {})
        values["recipe_set"] = tuple(values.get("recipe_set") or ())
        return cls(**values)


def configure(
    model: str | nn.Module | None = None,
    *,
    data: str | None = None,
    recipe: str | Recipe | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    batch_size: int | None = None,
    image_size: int | None = None,
    seed: int | None = None,
    val_fraction: float = 0.2,
    model_kwargs: Mapping[str, Any] | Iterable[str] | None = None,
    model_name: str | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    **session: Any,
) -> RunConfig:
    """A :class:`RunConfig` from ``cnnzoo.train``'s keywords; ``session``: the fields of ``SESSION_FIELDS``."""
    if resume is not None:
        if not str(resume).strip():
            raise UserError("--resume '': name a run directory")
        changes_recipe = bool(overrides) or batch_size is not None
        given = {"model": model, "data": data, "recipe": recipe, "image_size": image_size, "seed": seed}
        return _resumed(Path(resume), changes_recipe=changes_recipe, given=given, session=session)
    if model is None:
        raise UserError("train: name a model (or pass a module) or resume a run")
    name, info = model_identity(model, model_name)
    shortcut = {"batch_size": batch_size} if batch_size is not None else {}
    changes = {**parse_overrides(overrides), **shortcut}
    data = "digits" if data is None else check_data_spec(data)  # "" is a mistake, not the default
    reason = None
    if session.get("weights") is not None:
        session["weights"] = str(Path(session["weights"]).expanduser())
        if not Path(session["weights"]).is_file():
            raise UserError(f"--weights {session['weights']}: no such file")
        if recipe is None:  # fine-tuning: not the paper's from-scratch schedule
            recipe, reason = "finetune", "weights"
    if recipe is None and data in QUICK_DATA_SIZE:
        # a built-in digits set without a recipe: the quick recipe at 16 px (cluttered-digits: 12, its own side; or
        # the model's smallest side), whatever the length asked for, not the paper's 64k iterations (thousands of
        # epochs of 1,438 images)
        recipe, reason = "quick", "digits"
        image_size = max(QUICK_DATA_SIZE[data], info.test_size if info else 0) if image_size is None else image_size
    if recipe is None:
        recipe, reason = (info.recipe if info and info.recipe else "quick"), "model"
    resolved = resolve_recipe(recipe, changes)
    kwargs = parse_model_args(name, model_kwargs or {}) if info else dict(model_kwargs or {})
    image_size = check_image_size(image_size, info, kwargs)
    return RunConfig(model=name, recipe=resolved, image_size=image_size,
                     data=data, model_kwargs=kwargs, seed=0 if seed is None else seed, val_fraction=val_fraction,
                     out=None if out is None else str(out), recipe_set=tuple(sorted(changes)), recipe_reason=reason,
                     **session)


def _resumed(resume: Path, *, changes_recipe: bool, given: Mapping[str, Any], session: Mapping[str, Any]) -> RunConfig:
    run = resume.parent if resume.is_file() else resume
    saved = read_run_config(run)
    if changes_recipe:
        raise UserError(f"--resume {run}: the recipe cannot change on resume (see {run / 'config.json'}); only its "
                        "length can, with --epochs N, which re-plans the schedule and prints the change")
    own = {"model": saved["model"], "data": saved["data"], "recipe": saved["recipe"]["name"],
           "image_size": saved["image_size"], "seed": saved["seed"]}
    for key, value in given.items():
        if isinstance(value, (str, int)) and value != own[key]:  # None, a module, a Data or a Recipe: not compared
            raise UserError(f"--resume {run}: the run used {key} {own[key]!r}, not {value!r}")
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name in SESSION_FIELDS}
    # the thread count changes the order of floating-point sums: the run's own, unless asked otherwise (said)
    threads = saved.get("threads")
    if session.get("threads") is None:
        session = {**session, "threads": threads}
    elif threads is not None and session["threads"] != threads:
        warnings.warn(f"--threads {session['threads']}: the run started with {threads} threads; with another count "
                      "the resumed run is not bit-identical to an uninterrupted one", stacklevel=3)
    return RunConfig.from_dict(saved).replace(**{**defaults, **session}, out=str(run), resume=str(resume))


def read_run_config(run: Path) -> dict[str, Any]:
    """A run directory's config.json (its settings and the facts learnt from its data)."""
    if not run.is_dir():
        raise CheckpointError(f"--resume {run}: no such run directory")
    try:
        return json.loads((run / "config.json").read_text())
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not JSON: {exc}"
        raise CheckpointError(f"--resume {run}: cannot read {run / 'config.json'} ({reason})") from None


def model_identity(model: str | nn.Module, model_name: str | None) -> tuple[str, ModelInfo | None]:
    if isinstance(model, str):
        return model, model_info(model)
    return model_name or type(model).__name__, None


def check_image_size(image_size: int | None, info: ModelInfo | None, model_kwargs: dict[str, Any] | None = None) -> int:
    """The run's input side: in range, and no smaller than the network accepts (``registry.smallest_side``)."""
    valid = RUN_RANGES["image_size"]
    if image_size is not None and image_size not in valid:
        raise UserError(f"--image-size must be a number of pixels {valid}, got {image_size}")
    if info is None:
        if image_size is None:
            raise UserError("training a module needs image_size= (the side of its square input)")
        return image_size
    size = info.input_size[1] if image_size is None else image_size
    smallest = smallest_side(info.name, model_kwargs)
    if smallest is not None and size < smallest:
        raise UserError(f"--image-size {size} is too small for {info.name}: the smallest side it accepts is "
                        f"{smallest}")
    return size


def input_channels(config: RunConfig, net: nn.Module | None) -> int:
    if net is None:
        return model_info(config.model).input_size[0]
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3


def default_num_classes(config: RunConfig, net: nn.Module | None) -> int:
    """The model's class count (what ``synthetic`` data draws labels from); 10 for a module."""
    return model_info(config.model).num_classes if net is None else 10


# --- `--model-arg NAME=VALUE` ----------------------------------------------------------------------------------------

_FIXED = ("num_classes", "in_channels", "weights")
# the valid values of the families' numeric options, by name (a tuple value: each item), checked wherever a RunConfig
# is built; what depends on the network (FractalNet's eval_column) its class checks when it is built
MODEL_ARG_RANGES = {
    "dropout": Range(0, 1, hi_open=True),
    "aux_dropout": Range(0, 1, hi_open=True),
    "drop_path_rate": Range(0, 1, hi_open=True),
    "local_drop_prob": Range(0, 1, hi_open=True),
    "global_drop_ratio": Range(0, 1),
}


def check_model_args(kwargs: Mapping[str, Any]) -> None:
    """Refuse an option value outside ``MODEL_ARG_RANGES`` (one line naming the option and its range)."""
    for key, value in kwargs.items():
        valid = MODEL_ARG_RANGES.get(key)
        items = value if isinstance(value, (tuple, list)) else (value,)
        if valid is None or value is None:
            continue
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (int, float)) or item not in valid:
                allowed = str(valid).replace("a finite number", "a number")
                raise UserError(f"--model-arg {key}={value}: must be {allowed}{' (each)' if len(items) > 1 else ''}")


def model_options(name: str) -> dict[str, tuple[Any, Any]]:
    """The keyword options ``--model-arg`` accepts for the registered model ``name``: {option: (default, type)}."""
    entry = model_entry(name)
    target: Any = entry.builder
    params = dict(inspect.signature(target).parameters)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):  # a build function passing options to its class
        cls = _hints(target).get("return")
        if isinstance(cls, type):
            params = {**{k: p for k, p in params.items() if p.kind is not p.VAR_KEYWORD},
                      **inspect.signature(cls).parameters}
            target = cls
    hints = _hints(target.__init__ if isinstance(target, type) else target)
    return {k: (p.default, hints.get(k, p.annotation)) for k, p in params.items()
            if p.kind is p.KEYWORD_ONLY and k not in _FIXED and k not in entry.kwargs
            and p.default is not inspect.Parameter.empty}


def _hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # an annotation that does not resolve: fall back to the defaults' types
        return {}


def parse_model_args(name: str, items: Iterable[str] | Mapping[str, Any]) -> dict[str, Any]:
    """``["dropout=0.3", "drop_path_mode=batch"]`` (strings typed) or a mapping (names checked) -> kwargs."""
    options = model_options(name)
    pairs = list(items.items()) if isinstance(items, Mapping) else [_split(item) for item in items]
    result: dict[str, Any] = {}
    valid = ", ".join([*options, *(["spec"] if "spec" in model_entry(name).kwargs else [])]) or "none"
    for key, value in pairs:
        if key == "spec" and "spec" in model_entry(name).kwargs:  # fields of the registered spec, changed
            result[key] = _spec_changes(name, value)
            continue
        if key not in options:
            close = difflib.get_close_matches(key, list(options), n=2, cutoff=0.5)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise UnknownNameError(f"--model-arg {key}: {name} has no such option; {hint}options: {valid}")
        result[key] = _typed(name, key, value, options[key]) if isinstance(value, str) else value
    return result


def _spec_changes(name: str, value: Any) -> dict[str, Any]:
    """``spec={"depths": [3, 3, 3]}`` (a JSON object on the command line): checked by building the spec now."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, Mapping):
        raise UserError(f'--model-arg spec: a JSON object of spec fields, e.g. spec={{"depths": [3, 3, 3]}}')
    changed_spec(name, model_entry(name).kwargs["spec"], value)
    return dict(value)


def _split(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--model-arg expects name=value, got {item!r}")
    return key.strip(), value.strip()


def _typed(model: str, key: str, text: str, option: tuple[Any, Any]) -> Any:
    default, hint = option
    args = typing.get_args(hint)
    hint_name = (getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
                 if hint is not inspect.Parameter.empty else type(default).__name__)
    kinds = set(args) | {typing.get_origin(hint) or hint}
    try:
        if typing.get_origin(hint) is typing.Literal:
            if text not in map(str, args):
                raise ValueError(f"expected one of {', '.join(map(str, args))}")
            return text
        if text.lower() in ("none", "null") and (type(None) in kinds or default is None):
            return None
        if bool in kinds or isinstance(default, bool):
            if text.lower() in TRUE_WORDS + FALSE_WORDS:
                return text.lower() in TRUE_WORDS
            raise ValueError("expected true or false")
        if "," in text and any(typing.get_origin(k) is tuple or k is tuple for k in kinds):
            return tuple(float(v) for v in text.split(","))
        if int in kinds or (isinstance(default, int) and float not in kinds):
            number = float(text)
            if not number.is_integer():
                raise ValueError("expected an integer")
            return int(number)
        if float in kinds or isinstance(default, float):
            return float(text)
        return text
    except ValueError as exc:
        raise UserError(f"--model-arg {key}={text}: bad value for {model}'s option {key} ({hint_name}): "
                        f"{exc}") from None


__all__ = ["AMP_MODES", "MAX_IMAGE_SIDE", "MODEL_ARG_RANGES", "QUICK_DIGITS_SIZE", "RUN_RANGES",
           "SESSION_FIELDS", "RunConfig", "check_image_size", "check_model_args", "configure", "default_num_classes",
           "input_channels", "model_identity", "model_options", "parse_model_args", "read_run_config"]
