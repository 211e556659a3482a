"""Where a network runs and in which precision: the choices training and evaluation make alike.

- ``resolve_device("auto" | "cpu" | "cuda" | "cuda:N" | "mps")``: ``auto`` is CUDA when available; a device the
  machine lacks is refused in one line;
- ``amp_dtype_for(amp, device)``: the autocast dtype of ``--amp off | bf16 | fp16`` (default: bf16 on CUDA, off on
  the CPU; fp16, which needs a grad scaler, on CUDA only);
- ``sum_dtype(device)``: what sums of losses and hits accumulate in (float64; float32 on MPS, which has none);
- ``default_channels_last(device)``: the memory layout a run uses when nothing chose one (channels-last on CUDA,
  NCHW elsewhere; a training run long enough measures both instead, see ``cnnzoo.training.layout``);
- ``native_bf16_isa()``: the instruction sets of this CPU that compute in bf16 natively (AVX512_BF16, AMX-BF16), read
  from the CPU's flags in ``/proc/cpuinfo``. Without them ``--amp bf16`` on the CPU converts through fp32 and gains
  nothing; with them oneDNN's bf16 convolutions run up to twice the fp32 rate.
"""

from __future__ import annotations

from pathlib import Path

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


def default_channels_last(device: torch.device) -> bool:
    """The layout when neither a flag, a run's record nor a measurement chose one: channels-last on CUDA (cuDNN's
    tensor-core convolutions are NHWC), NCHW elsewhere."""
    return device.type == "cuda"


# /proc/cpuinfo's flag -> the instruction set's name: bf16 dot products (AVX512_BF16) and AMX's bf16 tiles
NATIVE_BF16_FLAGS = {"avx512_bf16": "AVX512_BF16", "amx_bf16": "AMX-BF16"}


def native_bf16_isa(cpuinfo: str | None = None) -> list[str]:
    """The native bf16 instruction sets of this CPU (``cpuinfo``: the text of ``/proc/cpuinfo``, read when None);
    empty where the CPU has none or its flags cannot be read (never guessed from the model name)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            break  # the first CPU's flags: every core of a machine has the same instruction sets
    return [name for flag, name in NATIVE_BF16_FLAGS.items() if flag in flags]


__all__ = ["AMP_MODES", "NATIVE_BF16_FLAGS", "amp_dtype_for", "default_channels_last", "native_bf16_isa",
           "resolve_device", "sum_dtype"]
