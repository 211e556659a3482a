"""Where a network runs and in which precision: the choices training and evaluation make alike.

- ``resolve_device("auto" | "cpu" | "cuda" | "cuda:N" | "mps")``: ``auto`` is CUDA when available; a device the
  machine lacks is refused in one line;
- ``amp_dtype_for(amp, device)``: the autocast dtype of ``--amp off | bf16 | fp16`` (default on CUDA: bf16 where the
  GPU has bf16 tensor cores, compute capability 8.0 and up, else fp16 with the grad scaler; off on the CPU; fp16,
  which needs a grad scaler, on CUDA only);
- ``set_backends(device, deterministic=..., tf32=...)``: the process-wide settings of a run (TF32, cuDNN benchmark,
  deterministic algorithms; on the CPU the heap, ``keep_cpu_heap``), returned for config.json;
- ``keep_cpu_heap()`` / ``release_cpu_heap()``: glibc's malloc told to keep the memory a training step frees for the
  next step, and the kept memory given back when the run ends;
- ``sum_dtype(device)``: what sums of losses and hits accumulate in (float64; float32 on MPS, which has none);
- ``default_channels_last(device)``: the memory layout a run uses when nothing chose one (channels-last on CUDA,
  NCHW elsewhere; a training run long enough measures both instead, see ``cnnzoo.training.layout``);
- ``native_bf16_isa()``: the instruction sets of this CPU that compute in bf16 natively (AVX512_BF16, AMX-BF16), read
  from the CPU's flags in ``/proc/cpuinfo``. Without them ``--amp bf16`` on the CPU converts through fp32 and gains
  nothing; with them oneDNN's bf16 convolutions run up to twice the fp32 rate.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from pathlib import Path
from typing import Any

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
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {device}: this machine (or this torch build) has no MPS device; use cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                        f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return device


BF16_CAPABILITY = (8, 0)  # Ampere: the first GPUs with bf16 tensor cores


def amp_dtype_for(amp: str | None, device: torch.device) -> torch.dtype | None:
    bf16_cores = device.type == "cuda" and torch.cuda.get_device_capability(device) >= BF16_CAPABILITY
    if amp is None:
        amp = ("bf16" if bf16_cores else "fp16") if device.type == "cuda" else "off"
    if amp not in AMP_MODES:
        raise UserError(f"--amp must be off, bf16 or fp16, got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise UserError("--amp fp16 needs a CUDA device (use --amp bf16 on CPU)")
    if amp == "bf16" and device.type == "cuda" and not bf16_cores:
        major, minor = torch.cuda.get_device_capability(device)
        warnings.warn(f"--amp bf16 on {device} (compute capability {major}.{minor}): no bf16 tensor cores below "
                      "8.0, so bf16 runs slowly; --amp fp16 (the default there) uses its fp16 tensor cores",
                      stacklevel=2)
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


DETERMINISTIC_CUBLAS = (":4096:8", ":16:8")  # the workspace settings that make cuBLAS reductions reproducible


def set_backends(device: torch.device, *, deterministic: bool, tf32: bool = True) -> dict[str, Any]:
    """Set the process-wide numerics of a run before its first CUDA operation; return them (config.json).

    - ``tf32`` (CUDA): float32 matmul precision ``"high"``, i.e. TF32 tensor cores for fp32 matrix products (the
      fully connected layers of AlexNet, ZFNet and VGG under ``--amp off``: PyTorch leaves matmul TF32 off), with
      cuDNN's TF32 convolutions (PyTorch's default); ``tf32=False``: ``"highest"`` and no TF32 convolutions;
    - cuDNN benchmark (autotuning each convolution shape) on CUDA, unless ``deterministic``;
    - ``deterministic``: ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (read when cuBLAS starts, so set before any CUDA work;
      another value already in the environment is refused), cuDNN benchmark off, cuDNN's deterministic algorithms,
      and ``torch.use_deterministic_algorithms(True, warn_only=True)``: deterministic kernels wherever PyTorch has
      them; an operation with none (e.g. ``AdaptiveAvgPool2d``'s CUDA backward, which at a 1x1 output adds without
      atomics) is named in a warning instead of stopping the run. A bit-exact resume on a GPU needs this mode.
      The mode stays on for the process.
    """
    if deterministic:
        current = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
        if current is not None and current not in DETERMINISTIC_CUBLAS:
            raise UserError(f"--deterministic: CUBLAS_WORKSPACE_CONFIG is {current!r}; deterministic cuBLAS needs "
                            f"{' or '.join(DETERMINISTIC_CUBLAS)} (unset it and cnnzoo sets {DETERMINISTIC_CUBLAS[0]})")
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", DETERMINISTIC_CUBLAS[0])
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        torch.backends.cudnn.allow_tf32 = tf32
    return {"deterministic": torch.are_deterministic_algorithms_enabled(),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "cudnn_benchmark": device.type == "cuda" and torch.backends.cudnn.benchmark,
            "cudnn_tf32": device.type == "cuda" and torch.backends.cudnn.allow_tf32,
            **({"cpu_heap": keep_cpu_heap()} if device.type == "cpu" else {})}


# glibc's malloc serves a block above its mmap threshold with a fresh mapping and gives freed memory above its trim
# threshold back to the system. Both thresholds start at 128 KiB and rise with the blocks freed (to 32 MiB and twice
# that), so a training step, which frees most of what it allocated, hands its memory back and the next step takes
# it again page by page: resnet20 at batch 128 took 5,000-10,000 minor page faults per step on the CPU, and 0-150
# with these thresholds (an 8-epoch run on a folder of 10,000 PNGs: 3.5% less time, the same numbers). Blocks above
# HEAP_MMAP_BYTES are still mapped for themselves.
HEAP_MMAP_BYTES = 1 << 30  # 1 GiB (mallopt's values are C ints)
HEAP_TRIM_BYTES = (1 << 31) - 1  # 2 GiB
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (mallopt and malloc_trim are glibc's), else None."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or not glibc
        return None
    if not version:
        return None
    libc = ctypes.CDLL(None)
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


def keep_cpu_heap() -> dict[str, Any]:
    """Tell glibc's malloc to keep freed memory for reuse (thresholds above), for the rest of the process: a run's
    steps then reuse the same pages. A no-op where the C library is not glibc. Returned for config.json."""
    libc = _glibc()
    if libc is None:
        return {"allocator": "not glibc: left as it is"}
    kept = libc.mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP_BYTES) == 1 and libc.mallopt(_M_TRIM_THRESHOLD,
                                                                                 HEAP_TRIM_BYTES) == 1
    return {"allocator": os.confstr("CS_GNU_LIBC_VERSION"), "kept": kept, "mmap_threshold_bytes": HEAP_MMAP_BYTES,
            "trim_threshold_bytes": HEAP_TRIM_BYTES}


def release_cpu_heap() -> None:
    """Give the memory glibc kept back to the system (``malloc_trim``): at the end of a run, so a process that goes
    on after it does not hold the run's peak."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


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


__all__ = ["AMP_MODES", "BF16_CAPABILITY", "DETERMINISTIC_CUBLAS", "NATIVE_BF16_FLAGS", "amp_dtype_for",
           "default_channels_last", "keep_cpu_heap", "native_bf16_isa", "release_cpu_heap", "resolve_device",
           "set_backends", "sum_dtype"]
