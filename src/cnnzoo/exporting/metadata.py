"""What an exported file carries, and the optional packages that write and read it (the ``[export]`` extra).

The metadata (ONNX ``metadata_props``; ``cnnzoo.json`` in a pt2 archive) is a flat string map, so any ONNX runtime
can read it: ``model``, ``paper``, ``classes`` (a JSON list, in output order), ``input_size`` (JSON ``[C, H, W]``),
``eval_resize`` (the short side images are resized to before the centre crop), ``mean``/``std`` (JSON lists, per
channel on the [0, 1] scale), ``cnnzoo_version``, ``weights`` and ``exporter``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError

EXTRA = "pip install 'cnnzoo[export]'"
PT2_METADATA = "cnnzoo.json"  # the extra file of a pt2 archive that holds the metadata
_JSON_KEYS = ("classes", "input_size", "mean", "std")


def require(*modules: str) -> None:
    """Import ``modules`` or fail with one line that names the extra to install."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            raise UserError(f"ONNX export and inference need {', '.join(modules)} ({name} is missing): "
                            f"{EXTRA}") from None


def encode_metadata(meta: dict[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v) if k in _JSON_KEYS else str(v) for k, v in meta.items()}


def decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {k: json.loads(v) if k in _JSON_KEYS else v for k, v in props.items()}
    if "eval_resize" in meta:
        meta["eval_resize"] = int(meta["eval_resize"])
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The cnnzoo metadata of an exported ``.onnx`` or ``.pt2`` file ({} for a file without it)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.suffix == ".pt2":
        extra = {PT2_METADATA: ""}
        torch.export.load(path, extra_files=extra)
        return decode_metadata(json.loads(extra[PT2_METADATA])) if extra[PT2_METADATA] else {}
    require("onnx")
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a damaged or foreign file: onnx's own message, on one line
        raise UserError(f"{path}: not a readable ONNX file ({str(exc).splitlines()[0] if str(exc) else exc!r})")
    return decode_metadata({p.key: p.value for p in model.metadata_props})


__all__ = ["EXTRA", "PT2_METADATA", "decode_metadata", "encode_metadata", "read_metadata", "require"]
