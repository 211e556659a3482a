"""Where a network runs and in which precision: the choices training and evaluation make alike.

- ``resolve_device("auto" | "cpu" | "cuda" | "cuda:N" | "mps")``: ``auto`` is CUDA when available; a device the
  machine lacks is refused in one line;
- ``amp_dtype_for(amp, device)``: the autocast dtype of ``--amp off | bf16 | fp16`` (default: bf16 on CUDA, off on
  the CPU; fp16, which needs a grad scaler, on CUDA only);
- ``sum_dtype(device)``: what sums of losses and hits accumulate in (float64; float32 on MPS, which has none).
"""

from __future__ import annotations

import torch

from .errors import UserError

AMP_MODES = ("off", "bf16", "fp16")


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {device}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {device}: cnnzoo runs on cpu, cuda (cuda:N) or mps, not {device.type}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                        f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return device


def amp_dtype_for(amp: str | None, device: torch.device) -> torch.dtype | None:
    amp = ("bf16" if device.type == "cuda" else "off") if amp is None else amp
    if amp not in AMP_MODES:
        raise UserError(f"--amp must be off, bf16 or fp16, got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs a CUDA device (use --amp bf16 on CPU)")
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def sum_dtype(device: torch.device) -> torch.dtype:
    """What sums of losses and hits accumulate in: float64, float32 on MPS (which has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


__all__ = ["AMP_MODES", "amp_dtype_for", "resolve_device", "sum_dtype"]
