"""``cnnzoo.export``: a network (a registered name, a checkpoint or a run directory) to ONNX or a torch.export
program, verified by running the written file against PyTorch.

ONNX goes through ``torch.onnx.export`` with the dynamo exporter (``torch.export`` graph -> ONNX); the
TorchScript-based exporter is used only when the dynamo exporter fails on a network, and the result says so. The
network is exported in eval mode: dropout and drop-path are off and GoogLeNet returns its main classifier only
(Szegedy et al. 2015 §5: the auxiliary classifiers are discarded at inference time).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import files
from ..errors import UserError
from ..data.sources import IMAGENET_MEAN, IMAGENET_STD
from ..evaluation.trained import load_trained
from ..registry import create_model, model_info, smallest_side
from ..version import __version__
from .onnx_export import MIN_OPSET, export_onnx
from .metadata import PT2_METADATA, encode_metadata
from .onnx_inference import OnnxNet

FORMATS = ("onnx", "pt2")
EXPORTERS = ("auto", "dynamo", "torchscript")
RTOL = 1e-4  # largest accepted |file - PyTorch| relative to the largest |PyTorch logit|


class VerificationError(Exception):
    """The written file disagrees with PyTorch; ``result`` has the figures and the ``.unverified`` path."""

    def __init__(self, message: str, result: ExportResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Source:
    """A network in eval mode and what its inputs must look like."""

    name: str
    net: nn.Module
    classes: tuple[str, ...]
    input_size: tuple[int, int, int]  # (C, H, W) of the exported graph
    eval_resize: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: str  # where the weights came from ("random init" without any)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    exporter: str  # "dynamo", "torchscript" (with the dynamo failure in ``note``) or "torch.export"
    metadata: dict[str, Any]
    batch_sizes: tuple[int, ...]  # the batch sizes verified
    max_abs_diff: float
    max_rel_diff: float
    top1_agreement: float  # fraction of verification inputs with the same top-1 class
    seconds: float
    note: str = ""

    @property
    def verified(self) -> bool:
        return self.max_rel_diff <= RTOL


def resolve(model_or_run: str | Path, *, weights: str | Path | None = None, image_size: int | None = None) -> Source:
    """A registered name (random init, or ``weights``), or a checkpoint / run directory (its best weights)."""

    as_path = Path(str(model_or_run)).expanduser()
    if weights is not None or as_path.exists():
        trained = load_trained(weights if weights is not None else as_path,
                               model=str(model_or_run) if weights is not None else None, run_layout=False)
        net, name, classes = trained.net, trained.name, trained.classes
        channels, side, resize = trained.in_channels, trained.image_size, trained.eval_resize
        mean, std, origin = trained.mean, trained.std, str(trained.path)
        smallest = smallest_side(name, trained.model_kwargs)
        classes = classes or tuple(str(i) for i in range(trained.num_classes))
    else:
        info = model_info(str(model_or_run))  # an unknown name: one line with the closest names
        name, (channels, side, _) = info.name, info.input_size
        net = create_model(name)
        classes = tuple(str(i) for i in range(info.num_classes))
        resize = round(side * 256 / 224) if side >= 64 else side  # as load_trained: ImageNet's 256 -> 224
        mean, std, origin = IMAGENET_MEAN, IMAGENET_STD, "random init"
        smallest = smallest_side(name)
    if image_size is not None:
        if smallest is not None and image_size < smallest:
            raise UserError(f"--image-size {image_size}: {name} needs inputs of at least {smallest} px")
        resize, side = max(image_size, round(image_size * resize / side)), image_size
    return Source(name, net.eval(), tuple(classes), (channels, side, side), resize, tuple(mean), tuple(std), origin)


def metadata(source: Source, exporter: str) -> dict[str, Any]:
    return {"model": source.name, "paper": model_info(source.name).paper, "classes": list(source.classes),
            "input_size": list(source.input_size), "eval_resize": source.eval_resize, "mean": list(source.mean),
            "std": list(source.std), "cnnzoo_version": __version__, "weights": source.weights, "exporter": exporter}


def _batch_dim(batch: str | int) -> int | None:
    """None for a dynamic batch dimension, else the fixed batch size."""
    if batch == "dynamic":
        return None
    try:
        n = int(batch)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise UserError(f"--batch must be 'dynamic' or a positive integer, got {batch!r}")
    return n


def _export_pt2(source: Source, example: torch.Tensor, fixed: int | None, out: Path) -> tuple[str, str]:
    dims = None if fixed else ({0: torch.export.Dim("batch", min=1, max=65536)},)
    program = torch.export.export(source.net, (example,), dynamic_shapes=dims)
    # into memory first: torch's archive writer aborts the whole process when the disk fills up under it; a Python
    # write fails with an OSError, reported in one line
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={PT2_METADATA: _json(metadata(source, "torch.export"))})
    with open(out, "wb") as f:
        f.write(buffer.getbuffer())
    return "torch.export", ""


def _json(meta: dict[str, Any]) -> str:
    return json.dumps(encode_metadata(meta))


def _loaded(path: Path, fmt: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if fmt == "onnx":
        return OnnxNet(path)
    program = torch.export.load(path)
    return program.module()


def verify(source: Source, path: Path, fmt: str, batch_sizes: tuple[int, ...], seed: int = 0
           ) -> tuple[float, float, float]:
    """Max |file - PyTorch|, that relative to the largest |PyTorch logit|, and top-1 agreement, on random inputs."""
    run = _loaded(path, fmt)
    gen = torch.Generator().manual_seed(seed)
    abs_diff = scale = 0.0
    agree = total = 0
    for n in batch_sizes:
        x = torch.randn(n, *source.input_size, generator=gen)
        with torch.inference_mode():
            ref = source.net(x).float()
            got = run(x).float()
        if got.shape != ref.shape:
            raise UserError(f"{path}: outputs of shape {tuple(got.shape)} for batch {n}, PyTorch gives "
                            f"{tuple(ref.shape)}")
        abs_diff = max(abs_diff, (got - ref).abs().max().item())
        scale = max(scale, ref.abs().max().item())
        agree += int((got.argmax(1) == ref.argmax(1)).sum())
        total += n
    return abs_diff, abs_diff / max(scale, 1e-12), agree / total


def export(
    model_or_run: str | Path,
    *,
    format: str = "onnx",
    weights: str | Path | None = None,
    out: str | Path | None = None,
    batch: str | int = "dynamic",
    opset: int | None = None,
    image_size: int | None = None,
    mode: str = "eval",
    exporter: str = "auto",
) -> ExportResult:
    """Export a registered network (random init or ``weights``), a checkpoint or a run directory, and verify it.

    Writes ``out`` (default: ``<run dir>/<model>.<format>`` for a run, ``./<model>.<format>`` otherwise), loads it
    (onnxruntime / ``torch.export.load``), and compares it with PyTorch at two batch sizes (1 and 3 for a dynamic
    batch; the fixed size twice otherwise). The file is written and verified beside ``out`` (a temporary name in
    the same folder) and only then put in place (:class:`cnnzoo.files.Replacement`): a failure, a full disk or a
    kill leaves the previous ``out`` or nothing, never a partial file. Beyond :data:`RTOL` relative the new file is
    kept as ``<out>.unverified`` (``out`` itself unchanged) and :class:`VerificationError` is raised.
    """
    if format not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if exporter not in EXPORTERS:
        raise UserError(f"--exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if mode != "eval":
        _refuse_mode(model_or_run, weights, mode)
    fixed = _batch_dim(batch)
    start = time.perf_counter()
    source = resolve(model_or_run, weights=weights, image_size=image_size)
    as_path = Path(str(model_or_run)).expanduser()
    if out is None:
        folder = (as_path if as_path.is_dir() else as_path.parent) if weights is None and as_path.exists() else Path()
        out = folder / f"{source.name}.{format}"
    out = Path(out).expanduser()
    if out.parent and not out.parent.is_dir():
        raise UserError(f"--out {out}: the folder {out.parent} does not exist")
    # written and verified beside ``out``, then put in place
    with files.Replacement(out, keep_suffix=True) as staged:
        if not staged.target.through:
            files.clean_stale_temps(staged.tmp.parent)  # an earlier export a kill interrupted
        result = _write_and_verify(source, format, fixed, opset, exporter, staged.tmp, out, start)
        beside = staged.tmp if staged.target.through else out  # a device or a FIFO: nothing goes beside it
        stale = beside.with_name(beside.name + ".unverified")
        if not result.verified:
            staged.keep_as(stale)
            raise VerificationError(f"{out}: differs from PyTorch by {result.max_rel_diff:.2e} relative (max abs "
                                    f"{result.max_abs_diff:.3g}, top-1 agreement {100 * result.top1_agreement:.1f}%), "
                                    f"beyond {RTOL:g}; kept as {stale}{_left(staged)}",
                                    dataclasses.replace(result, path=stale))
        staged.commit()
    stale.unlink(missing_ok=True)
    return result


def _write_and_verify(source: Source, format: str, fixed: int | None, opset: int | None, exporter: str, path: Path,
                      out: Path, start: float) -> ExportResult:
    """Export ``source`` to ``path`` (the temporary file of ``out``) and compare the written file with PyTorch; a
    failed write is one line naming ``out``."""
    example = torch.randn(fixed or 2, *source.input_size, generator=torch.Generator().manual_seed(1))
    try:
        if format == "onnx":
            used, note = export_onnx(source.net, source.name, example, fixed, opset, exporter, path,
                                     lambda used: metadata(source, used))
        else:
            if opset is not None:
                raise UserError("--opset applies to --format onnx only")
            used, note = _export_pt2(source, example, fixed, path)
    except OSError as exc:  # a full disk, a folder that went away: nothing reached the target
        raise files.write_error(out, exc, kept="nothing was replaced") from None
    sizes = (1, 3) if fixed is None else (fixed, fixed)
    abs_diff, rel_diff, agreement = verify(source, path, format, sizes)
    return ExportResult(out, format, used, metadata(source, used), sizes, abs_diff, rel_diff, agreement,
                        time.perf_counter() - start, note)


def _left(staged: files.Replacement) -> str:
    """What the target holds after a failed verification (the previous file is never replaced by a bad one)."""
    return f"; {staged.path} is unchanged" if staged.target.exists and not staged.target.through else ""


def _refuse_mode(model_or_run: str | Path, weights: str | Path | None, mode: str) -> None:
    if mode != "train":
        raise UserError(f"--mode must be eval or train, got {mode!r}")
    name, aux = str(model_or_run), 0
    with contextlib.suppress(UserError):  # a run directory or checkpoint: no registered name to look up
        aux = model_info(name).aux_outputs
    if aux:
        raise UserError(f"{name}: its {aux} auxiliary classifier outputs exist in train mode only (they train "
                            "the network and are discarded for inference); export it in eval mode")
    raise UserError("--mode train: dropout, drop-path and batch statistics make a train-mode graph random and "
                    "batch-dependent; exported networks are for inference, use --mode eval")


__all__ = ["EXPORTERS", "FORMATS", "MIN_OPSET", "RTOL", "ExportResult", "Source", "VerificationError", "export",
           "resolve", "verify"]
