"""Checkpoints and weights files: written atomically, read without running code (cnnzoo's one loading path).

A run directory holds

- ``last.safetensors`` / ``best.safetensors``: the weights, with the metadata needed to rebuild the model and its
  input pipeline (model name and options, classes, input size, normalisation) under ``__metadata__``;
- ``last.pt``: the whole training state (weights, optimizer, schedule, scaler, RNG, epoch, step, metrics history,
  run config), made of tensors and plain Python data only, so ``torch.load(weights_only=True)`` reads it;
- ``previous.pt``: the ``last.pt`` before the latest one (a fallback if ``last.pt`` is damaged).

Every file is written to a temporary name in the same folder, flushed and fsynced, then renamed over the old one
with ``os.replace`` (atomic on POSIX and Windows): a crash or kill at any moment leaves the previous file intact.
Every file is read with safetensors or ``torch.load(weights_only=True)`` (:func:`torch_load`), and every failure is
one :class:`CheckpointError` naming the file (``WeightsError`` is the same class, under its public name). The
metadata read with the weights is checked before anything uses it (:func:`check_metadata`): a side that overflows,
a standard deviation of 0, a class list that disagrees with the class count or holds a line break is refused in one
line, never evaluated into NaN.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import pickletools
import re
import shutil
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from .data.sources import check_class_names
from .errors import UserError
from .files import atomic_write

FORMAT = "cnnzoo-train-state"
FORMAT_VERSION = 1
WEIGHTS_FORMAT = "cnnzoo-weights"


class CheckpointError(UserError, ValueError):
    """A checkpoint or weights file that cannot be read, or does not fit the model; the message says why."""


WeightsError = CheckpointError  # the public name (``cnnzoo.WeightsError``)

MAX_SIDE = 65_536  # largest image side (and evaluation resize) metadata may name: beyond it, no image is decoded
MAX_COUNT = 1 << 24  # largest class or channel count metadata may name (a larger layer overflows what torch sizes)


def nonfinite_tensors(state_dict: Mapping[str, Any]) -> list[str]:
    """The keys of floating-point tensors holding inf or NaN."""
    return [k for k, v in state_dict.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def unusable_tensors(net: torch.nn.Module) -> list[str]:
    """What makes a network's weights unusable, never to be saved as good or evaluated: a parameter holding inf or
    NaN, or a buffer holding NaN. (An infinite batch-norm running variance, which a few steps of an untrained deep
    network on tiny inputs can produce, only zeroes its channel: its outputs stay finite.)"""
    params = [k for k, v in net.named_parameters() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    buffers = [k for k, v in net.named_buffers() if v.is_floating_point() and bool(torch.isnan(v).any())]
    return params + buffers


def save_weights(path: Path, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> None:
    """Weights as safetensors; ``metadata`` values are stored as JSON strings."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    meta = {"format": WEIGHTS_FORMAT, **{k: json.dumps(v) for k, v in metadata.items()}}
    try:
        blob = save(tensors, metadata=meta)
    except RuntimeError:  # tensors sharing memory (tied weights): safetensors wants separate copies
        blob = save({k: v.clone() for k, v in tensors.items()}, metadata=meta)
    atomic_write(path, lambda f: f.write(blob))


def read_weights_metadata(path: Path) -> dict[str, Any]:
    """The JSON-decoded ``__metadata__`` of a cnnzoo safetensors file (another file's metadata: as stored)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        if raw.get("format") != WEIGHTS_FORMAT:  # another library's file: its metadata as it is
            return dict(raw)
        return {k: (v if k == "format" else json.loads(v)) for k, v in raw.items()}
    except Exception as exc:  # truncated, garbage header, or metadata that is not JSON
        raise CheckpointError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None


def check_metadata(meta: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """``meta`` (a weights file's metadata or a training state's ``config``) if every field that rebuilds the model
    and its inputs is usable; else a :class:`CheckpointError` naming ``path`` and the field. Absent or null fields
    are left to their defaults. Checked: ``model``/``data`` strings, ``model_kwargs`` a mapping, ``num_classes`` and
    ``in_channels`` in 1..MAX_COUNT, ``image_size`` and ``eval_resize`` in 1..MAX_SIDE (the resize at least the
    side it is cropped to), ``classes`` distinct one-line names (as many as ``num_classes``), ``mean``/``std`` finite,
    one per channel, every ``std`` positive, ``val_fraction`` between 0 and 1."""
    meta = dict(meta)

    def bad(field: str, why: str) -> CheckpointError:
        return CheckpointError(f"{path}: metadata {field} = {_short(meta[field])}: {why}; not usable")

    def present(field: str) -> bool:
        return meta.get(field) is not None

    for field in ("model", "data"):
        if present(field) and not isinstance(meta[field], str):
            raise bad(field, "not a string")
    if present("model_kwargs") and not (isinstance(meta["model_kwargs"], Mapping)
                                        and all(isinstance(k, str) for k in meta["model_kwargs"])):
        raise bad("model_kwargs", "not a mapping of option names")
    for field, top in (("num_classes", MAX_COUNT), ("in_channels", MAX_COUNT), ("image_size", MAX_SIDE),
                       ("eval_resize", MAX_SIDE)):
        if present(field) and not (_is_int(meta[field]) and 1 <= meta[field] <= top):
            raise bad(field, f"not a whole number between 1 and {top:,}")
    if present("image_size") and present("eval_resize") and meta["eval_resize"] < meta["image_size"]:
        raise bad("eval_resize", f"smaller than the image_size {meta['image_size']} it is cropped to")
    if present("classes"):
        classes = meta["classes"]
        if not isinstance(classes, list) or not classes:
            raise bad("classes", "not a list of class names")
        try:
            check_class_names(classes, f"{path}: metadata classes")
        except UserError as exc:
            raise CheckpointError(str(exc)) from None
        if present("num_classes") and len(classes) != meta["num_classes"]:
            raise bad("classes", f"{len(classes)} names for num_classes {meta['num_classes']}")
    for field in ("mean", "std"):
        if not present(field):
            continue
        values = meta[field]
        if not isinstance(values, list) or not values or not all(_is_number(v) and math.isfinite(v) for v in values):
            raise bad(field, "not a list of finite numbers")
        if present("in_channels") and len(values) != meta["in_channels"]:
            raise bad(field, f"{len(values)} values for {meta['in_channels']} input channels")
        if field == "std" and min(values) <= 0:
            raise bad(field, "a standard deviation of 0 or less (normalising by it gives inf/NaN)")
    if present("val_fraction") and not (_is_number(meta["val_fraction"]) and 0 < meta["val_fraction"] < 1):
        raise bad("val_fraction", "not between 0 and 1")
    return meta


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def save_state(path: Path, state: Mapping[str, Any], *, keep_previous: bool = True) -> None:
    """The training state, atomically; the file it replaces is kept as ``previous.pt`` first."""
    path = Path(path)
    if keep_previous and path.exists():
        previous = path.with_name("previous.pt")
        tmp = previous.with_name(f".{previous.name}.tmp-{os.getpid()}")
        try:
            os.link(path, tmp)  # a second name for the same, complete file: no copy, no window
        except OSError:
            shutil.copyfile(path, tmp)
        os.replace(tmp, previous)
    atomic_write(path, lambda f: torch.save(dict(state), f))


def torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain data only. A pickle that names anything else (code) is
    refused, never loaded another way; a truncated or garbage file is a :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": torch's notes, not the user's concern
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        named = found.group(1) if found else _pickle_global(path)
        if named is None:  # random bytes read as a pickle: torch's message is advice that does not apply
            raise CheckpointError(f"{path}: not a checkpoint (unreadable: damaged, or another kind of file)") from None
        raise CheckpointError(f"{path}: refused: contains code (the pickle names {named}); cnnzoo reads "
                              "checkpoints as tensors and plain data only, so nothing in it ran") from None
    except Exception as exc:  # truncated, zero bytes, not a zip: many exception types
        raise CheckpointError(f"{path}: not a checkpoint (unreadable: damaged, or another kind of file; "
                              f"{type(exc).__name__})") from None


def _pickle_global(path: Path) -> str | None:
    """The first callable a pickle names (``module.name``), found by reading its opcodes without running any (torch
    rejects some pickles, e.g. protocol 4 ones, before it sees what they name); None for bytes that are no pickle."""
    try:
        blob = path.read_bytes()
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                blob = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    except (OSError, StopIteration, zipfile.BadZipFile):
        return None
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(blob):
            if op.name == "GLOBAL":
                named = re.fullmatch(r"([\w.]+) ([\w.]+)", str(arg))
                return f"{named.group(1)}.{named.group(2)}" if named else None
            if op.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = f"{strings[-2]}.{strings[-1]}"
                return name if re.fullmatch(r"[\w.]+", name) else None
            if isinstance(arg, str):
                strings.append(arg)
    except Exception:  # garbage: opcodes end in an error
        return None
    return None


def load_state(path: Path) -> dict[str, Any]:
    """A training state written by :func:`save_state`, read with ``weights_only=True`` (no code runs)."""
    path = Path(path)
    state = torch_load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cnnzoo training checkpoint")
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer cnnzoo (format {state['format_version']})")
    return state


def read_state_dict(source: str | Path | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A flat ``{key: tensor}`` from a path (safetensors, or a torch file read by :func:`torch_load`) or a mapping.

    Accepts a plain state dict, a cnnzoo training checkpoint (``{"model": state_dict, ...}``) or a
    ``{"state_dict": ...}`` wrapper. ``module.`` prefixes left by DataParallel/DDP are removed.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    elif not Path(source).is_file():
        raise CheckpointError(f"{source}: no such weights file")
    elif Path(source).suffix == ".safetensors":
        state = _safetensors(Path(source))
    else:
        state = torch_load(Path(source))
        if not isinstance(state, Mapping):
            raise CheckpointError(f"{source}: holds a {type(state).__name__}, not a state dict")
    for wrapper in ("model", "state_dict"):
        if wrapper in state and isinstance(state[wrapper], Mapping):
            state = dict(state[wrapper])
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as exc:  # truncated or garbage files surface as many exception types
        raise CheckpointError(f"{path}: not a readable weights file ({type(exc).__name__}: {exc})") from None


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights and metadata of any checkpoint cnnzoo reads, without running code.

    ``.safetensors`` written by the trainer (metadata: the run's model, classes, input pipeline), a training state
    (``last.pt``: its ``config``), or a plain state dict (``.pt``/``.pth``; no metadata, ``{}``). The metadata is
    checked (:func:`check_metadata`).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    if path.suffix == ".safetensors":
        meta = read_weights_metadata(path)
        return read_state_dict(path), (check_metadata(meta, path) if meta.get("format") == WEIGHTS_FORMAT else {})
    raw = torch_load(path)
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        config = raw.get("config") or {}
        if not isinstance(config, Mapping):
            raise CheckpointError(f"{path}: its config is a {type(config).__name__}, not a mapping")
        if not isinstance(raw.get("model"), Mapping):
            raise CheckpointError(f"{path}: holds no model weights (its 'model' is not a state dict)")
        return read_state_dict(raw["model"]), check_metadata(config, path)
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: holds a {type(raw).__name__}, not a state dict")
    return read_state_dict(raw), {}


def find_resume_state(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """``last.pt`` of a run directory (or a .pt path); if it is damaged, ``previous.pt`` with a warning."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir, load_state(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"--resume {run_dir}: no such run directory")
    last, previous = run_dir / "last.pt", run_dir / "previous.pt"
    try:
        return last, load_state(last)
    except CheckpointError as exc:
        if not previous.is_file():
            raise
        warnings.warn(f"{exc}; resuming from {previous} instead", stacklevel=2)
        return previous, load_state(previous)
