"""A trained network and its input pipeline, rebuilt from a checkpoint; the evaluation data that fits it.

A checkpoint is a run directory (its ``best.safetensors``, else ``last.safetensors``, else ``last.pt``), a
``.safetensors`` file written by the trainer, a ``last.pt`` training state, or a plain state dict (``.pt``/``.pth``,
e.g. torchvision's weights). Everything is read without running code (safetensors, ``torch.load(weights_only=True)``;
see :func:`cnnzoo.checkpoint.read_checkpoint`). The trainer's metadata names the model and its options, the
classes, the input side, the evaluation resize and the normalisation, so evaluation sees images exactly as the run's
validation did, and, on the kind of device the run trained on, in the run's memory layout and precision (its
``layout`` and ``amp``; elsewhere, and for weights without them, the device's defaults).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, read_checkpoint, unusable_tensors
from ..data import Data, FileSource, Geometry, TensorSource, load_data
from ..data.load import check_data_spec
from ..data.sources import IMAGENET_MEAN, IMAGENET_STD
from ..device import amp_dtype_for, default_channels_last
from ..errors import UserError
from ..registry import create_model, model_info, smallest_side

SPLITS = ("val", "train", "all")
RUN_FILES = ("best.safetensors", "last.safetensors", "last.pt")  # what a run directory offers, in order of choice


@dataclass
class Trained:
    """A network ready for evaluation, with what its inputs must look like."""

    path: Path
    name: str
    net: nn.Module
    classes: tuple[str, ...] | None  # None: a plain state dict; the data's classes are taken in output order
    num_classes: int
    in_channels: int
    image_size: int
    eval_resize: int  # short side resized to this, then the centre ``image_size`` crop (the run's validation view)
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]
    data: str | None  # what it was trained on (``--data`` default)
    val_fraction: float
    channels_last: bool = False  # the memory layout ``net`` and its input batches are in
    amp: str | None = None  # the run's --amp ("off", "bf16", "fp16") where it applies here (see ``load_trained``)
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # create_model's keywords (a lab variant's spec)

    def amp_dtype(self, amp: str | None) -> torch.dtype | None:
        """The autocast dtype of an evaluation: ``amp`` when given, else the run's, else the device's default."""
        return amp_dtype_for(amp if amp is not None else self.amp, next(self.net.parameters()).device)

    def geometry(self, side: int | None = None) -> Geometry:
        """The evaluation view at ``side`` (default: the input side): short side -> resize, centre crop."""
        size = side or self.image_size
        return Geometry.eval_view(size, self.eval_resize)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or the best one a run directory holds."""
    path = Path(path).expanduser()
    if path.is_dir():
        for name in RUN_FILES:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: a folder without {', '.join(RUN_FILES)} (not a cnnzoo run directory)")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or run directory")
    return path


def load_trained(
    path: str | Path, *, model: str | None = None, device: torch.device | str = "cpu", run_layout: bool = True
) -> Trained:
    """Rebuild the network of ``path`` (a checkpoint or a run directory) in eval mode on ``device``: in the run's
    memory layout and with its precision as the default ``amp`` when ``device`` is the kind the run trained on (the
    run's choices were made, or measured, for that kind), else in the device's default layout. ``run_layout=False``:
    NCHW whatever the run chose (the exporter's plain graph).

    ``model``, when given, must be the checkpoint's model: a checkpoint of another architecture is refused with both
    names; weights that do not fit (another class count, another variant) are refused with the keys or shapes named.
    """
    if model is not None:
        model_info(model)  # an unknown name is refused first, with the closest registered names
    path, state, meta = _read_usable(Path(path).expanduser())
    saved = meta.get("model")
    if model is not None and saved is not None and model != saved:
        raise CheckpointError(f"{path}: a checkpoint of {saved}, not {model}")
    name = model or saved
    if name is None:
        raise UserError(f"{path}: no cnnzoo metadata says which network this is; name it (cnnzoo eval MODEL ...)")
    info = model_info(name)
    classes = tuple(meta["classes"]) if meta.get("classes") else None
    num_classes = len(classes) if classes else int(meta.get("num_classes") or info.num_classes)
    in_channels = int(meta.get("in_channels") or info.input_size[0])
    image_size = _side(meta, "image_size", path) or info.input_size[1]
    model_kwargs = dict(meta.get("model_kwargs") or {})
    smallest = smallest_side(name, model_kwargs)
    if smallest is not None and image_size < smallest:
        raise CheckpointError(f"{path}: its metadata's image_size {image_size} is below the smallest side {name} "
                              f"accepts ({smallest})")
    default_resize = round(image_size * 256 / 224) if image_size >= 64 else image_size  # ImageNet: 256 -> 224
    eval_resize = _side(meta, "eval_resize", path) or default_resize
    if eval_resize < image_size:
        raise CheckpointError(f"{path}: its metadata's eval_resize {eval_resize} is below its image_size {image_size}")
    mean = tuple(meta.get("mean") or (IMAGENET_MEAN if in_channels == 3 else (0.449,)))
    std = tuple(meta.get("std") or (IMAGENET_STD if in_channels == 3 else (0.226,)))
    try:  # a torchvision state dict is mapped for the torchvision-compatible variants
        net = create_model(name, num_classes=num_classes, in_channels=in_channels, weights=state, **model_kwargs)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    bad = unusable_tensors(net)
    if bad:  # never evaluated: every prediction would be NaN (or a fixed class)
        raise CheckpointError(f"{path}: {len(bad)} tensors hold inf/NaN (first {bad[0]}): not usable weights")
    device = torch.device(device)
    same_kind = str(meta.get("device", "")).split(":")[0] == device.type
    layout = meta.get("layout") if same_kind else None
    if layout is None and same_kind and isinstance(meta.get("channels_last"), bool):  # a run from before `layout`
        layout = "channels_last" if meta["channels_last"] else "nchw"
    channels_last = run_layout and (layout == "channels_last" if layout is not None else default_channels_last(device))
    net = net.to(device).eval()
    if channels_last:
        net.to(memory_format=torch.channels_last)
    return Trained(path=path, name=name, net=net, classes=classes, num_classes=num_classes,
                   in_channels=in_channels, image_size=image_size,
                   eval_resize=eval_resize, mean=mean, std=std,
                   data=meta.get("data"), val_fraction=float(meta.get("val_fraction") or 0.2),
                   channels_last=channels_last, amp=meta.get("amp") if same_kind else None,
                   model_kwargs=model_kwargs)


MAX_SIDE = 2**20  # an image side past this is no image's: its tensors' sizes would overflow


def _side(meta: dict[str, Any], key: str, path: Path) -> int | None:
    """An image side from a checkpoint's metadata (None when absent), refused in one line when it is not one."""
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
        raise CheckpointError(f"{path}: its metadata's {key} {value!r} is not an image side (1 to {MAX_SIDE:,} "
                              "pixels)")
    return value


def _read_usable(given: Path) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]]:
    """The checkpoint of ``given`` with its weights and metadata. In a run directory a damaged file falls back to the
    next one (best -> last -> last.pt, with a warning)."""
    first = resolve_checkpoint(given)
    candidates = [given / n for n in RUN_FILES if (given / n).is_file()] if given.is_dir() else [first]
    for i, path in enumerate(candidates):
        try:
            state, meta = read_checkpoint(path)
        except CheckpointError as exc:
            if i + 1 == len(candidates):
                raise
            warnings.warn(f"{exc}; using {candidates[i + 1]} instead", stacklevel=3)
            continue
        return path, state, meta
    raise CheckpointError(f"{given}: no readable checkpoint")  # unreachable: candidates is never empty


def eval_data(trained: Trained, spec: str | None, *, split: str = "val", val_fraction: float | None = None) -> Data:
    """``spec`` (default: the data the network was trained on) as a :class:`Data` whose ``val`` is ``split``.

    Images are decoded as in the run's validation, normalised with the network's own statistics, and labelled in
    the network's class order. Data with classes the network does not know is refused; a subset of them is fine.
    """
    if split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    spec = trained.data if spec is None else check_data_spec(spec)  # "" is a mistake, not the default
    if spec is None:
        raise UserError(f"{trained.path}: no data recorded with these weights; pass --data")
    if val_fraction is None:
        val_fraction = trained.val_fraction if spec == trained.data else 0.2
    data = load_data(spec, image_size=trained.image_size, in_channels=trained.in_channels,
                     num_classes=trained.num_classes, val_fraction=val_fraction)
    source = {"val": data.val, "train": data.train, "all": _concat(data.train, data.val)}[split]
    classes = trained.classes
    if classes is None:  # a plain state dict: the data's classes, in the order of the network's outputs
        if data.num_classes != trained.num_classes:
            raise UserError(f"--data {spec}: {data.num_classes} classes, but {trained.path} has "
                            f"{trained.num_classes} outputs")
        classes = data.classes
    elif data.classes != classes:
        unknown = [c for c in data.classes if c not in classes]
        if unknown:
            raise UserError(f"--data {spec}: classes {_names(unknown)} are not among the {len(classes)} classes of "
                            f"{trained.path} ({_names(classes)})")
        source = _relabel(source, [classes.index(c) for c in data.classes])
    return dataclasses.replace(data, classes=tuple(classes), val=source, mean=trained.mean, std=trained.std)


def _names(names: Any, limit: int = 8) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _concat(a: TensorSource | FileSource, b: TensorSource | FileSource) -> TensorSource | FileSource:
    if isinstance(a, TensorSource):
        return TensorSource(torch.cat([a.images, b.images]), torch.cat([a.labels, b.labels]))
    return FileSource(a.paths + b.paths, a.labels + b.labels)


def _relabel(source: TensorSource | FileSource, mapping: list[int]) -> TensorSource | FileSource:
    if isinstance(source, TensorSource):
        return TensorSource(source.images, torch.tensor(mapping, dtype=torch.long)[source.labels])
    return FileSource(source.paths, [mapping[label] for label in source.labels])


__all__ = ["SPLITS", "Trained", "eval_data", "load_trained", "resolve_checkpoint"]
