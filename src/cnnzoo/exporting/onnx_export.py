"""ONNX files through ``torch.onnx.export``: the dynamo exporter first, the TorchScript-based one where it fails.

The dynamo exporter writes opset 18 or newer and converts down on request; when that conversion fails it keeps its
own opset, so a lower ``opset`` it cannot reach goes to the TorchScript-based exporter (opset 7 and newer). Either
way LRN layers become ONNX ``LRN`` nodes (:mod:`cnnzoo.exporting.lrn`).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .lrn import translation_table, with_onnx_lrn
from .metadata import encode_metadata, require

MIN_OPSET = 7  # the TorchScript-based exporter's floor


def _quiet(fn: Callable[[], Any]) -> Any:
    """Run an exporter without its own progress lines and logs (also those printed below Python, on fd 1 and 2);
    its failures reach the user as our one-line errors."""
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(io.StringIO()):
        try:
            os.dup2(sink.fileno(), 1), os.dup2(sink.fileno(), 2)
            return fn()
        finally:
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def _onnx_dynamo(net: nn.Module, example: torch.Tensor, fixed: int | None, opset: int | None, out: Path,
                 meta: dict[str, Any]) -> None:
    dims = None if fixed else ({0: torch.export.Dim("batch", min=1, max=65536)},)
    program = _quiet(lambda: torch.onnx.export(
        with_onnx_lrn(net), (example,), dynamo=True, dynamic_shapes=dims, opset_version=opset,
        input_names=["input"], output_names=["logits"], custom_translation_table=translation_table()))
    written = program.model.graph.opset_imports.get("", 18)
    if opset is not None and written != opset:  # the exporter's down-conversion failed and kept its own opset
        raise _OpsetNotReached(f"the dynamo exporter writes opset {written} and could not convert it to {opset}")
    program.model.metadata_props.update(encode_metadata(meta))
    program.save(out, external_data=False)


class _OpsetNotReached(Exception):
    pass


def _onnx_torchscript(net: nn.Module, example: torch.Tensor, fixed: int | None, opset: int | None, out: Path,
                      meta: dict[str, Any]) -> None:
    import onnx

    @torch.onnx.symbolic_helper.parse_args("v", "i", "f", "f", "f")
    def lrn(g, x, size, alpha, beta, k):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)

    torch.onnx.register_custom_op_symbolic("cnnzoo::local_response_norm", lrn, MIN_OPSET)
    axes = None if fixed else {"input": {0: "batch"}, "logits": {0: "batch"}}
    with warnings.catch_warnings():  # its deprecation notice: the command already says which exporter ran and why
        warnings.simplefilter("ignore", DeprecationWarning)
        _quiet(lambda: torch.onnx.export(with_onnx_lrn(net), (example,), str(out), dynamo=False,
                                         opset_version=opset, input_names=["input"], output_names=["logits"],
                                         dynamic_axes=axes))
    model = onnx.load(str(out))
    onnx.helper.set_model_props(model, encode_metadata(meta))
    onnx.save(model, str(out))


def _first_line(exc: Exception, limit: int = 300) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:limit]


def _opset_error(exc: Exception, opset: int | None) -> UserError | None:
    text = str(exc)
    if opset is not None and ("opset" in text.lower() or "version" in text.lower()):
        first = next((line.strip() for line in text.splitlines() if "opset" in line.lower()), _first_line(exc))
        return UserError(f"--opset {opset}: too old for an operator this network uses ({first[:200]})")
    return None


def export_onnx(net: nn.Module, name: str, example: torch.Tensor, fixed: int | None, opset: int | None,
                exporter: str, out: Path, metadata: Callable[[str], dict[str, Any]]) -> tuple[str, str]:
    """Write ``net`` (eval mode) to ``out``; ``fixed``: the batch size, None for a dynamic one; ``metadata(used)``:
    what to embed, given the exporter used. Returns the exporter used and why the TorchScript one was ("" if not).
    A failure to write the file (``OSError``) propagates as it is, for the caller to name its target."""
    require("onnx", "onnxruntime", "onnxscript")
    if opset is not None and opset < MIN_OPSET:
        raise UserError(f"--opset {opset}: too old; the exporters write opset {MIN_OPSET} or newer "
                        "(the dynamo exporter's native opset is 18)")
    if exporter in ("auto", "dynamo"):
        try:
            _onnx_dynamo(net, example, fixed, opset, out, metadata("dynamo"))
            return "dynamo", ""
        except OSError:  # writing the file failed (a full disk): the other exporter would fail the same way
            raise
        except _OpsetNotReached as exc:
            if exporter == "dynamo":
                raise UserError(f"--opset {opset}: {exc}; try --exporter auto") from None
            note = str(exc)
        except Exception as exc:  # the exporter's failures are of many types
            if exporter == "dynamo":
                raise UserError(f"the dynamo exporter failed on {name}: {_first_line(exc)}") from None
            note = f"the dynamo exporter failed ({type(exc).__name__}: {_first_line(exc, 200)})"
    else:
        note = ""  # asked for by name
    try:
        _onnx_torchscript(net, example, fixed, opset, out, metadata("torchscript"))
    except OSError:  # writing the file failed: the caller names the target
        raise
    except Exception as exc:
        raise (_opset_error(exc, opset) or UserError(
            f"ONNX export of {name} failed: {_first_line(exc)}")) from None
    return "torchscript", note


__all__ = ["MIN_OPSET", "export_onnx"]
