"""The analyzer's options as data: dtype names, optimizer state per parameter, and input sizes (``"3x224x224"``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "fp64": torch.float64, "float64": torch.float64, "double": torch.float64,
}  # fmt: skip

# Optimizer state per trainable parameter, in parameter-sized tensors, plus bytes per parameter *tensor*
# (torch.optim: SGD momentum_buffer; Adam/AdamW exp_avg + exp_avg_sq + a float32 0-dim `step`; RMSprop square_avg).
OPTIMIZERS: dict[str, tuple[int, int]] = {
    "sgd": (1, 0),  # with momentum, as every paper in the zoo trains (plain SGD without momentum: "none")
    "adam": (2, 4),
    "adamw": (2, 4),
    "rmsprop": (1, 4),
    "none": (0, 0),
}


def parse_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[dtype.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}") from None


def parse_input_size(size: Sequence[int] | str) -> tuple[int, ...]:
    """``"3x224x224"`` or ``(3, 224, 224)`` -> ``(3, 224, 224)``; every dimension a positive integer."""
    if isinstance(size, str):
        parts = size.lower().replace("×", "x").split("x")
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"bad input size {size!r}: expected CxHxW, e.g. 3x224x224") from None
    else:
        dims = tuple(int(d) for d in size)
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"bad input size {size!r}: every dimension must be a positive integer")
    return dims
