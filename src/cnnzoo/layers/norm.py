"""Local response normalisation as the 2012-2014 papers define it, computed in fp32 at any precision."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

HALF_DTYPES = (torch.float16, torch.bfloat16)


class LocalResponseNorm(nn.LocalResponseNorm):
    """``nn.LocalResponseNorm`` computed in fp32 when its input is in half precision (autocast, ``model.half()``).

    LRN squares its input: in fp16 an activation above 256 squares past 65,504, the window's sum is inf and the
    output silently 0 (AlexNet's first ReLU outputs reach that); in bf16 the window's sum keeps 8 bits. The
    arithmetic runs in fp32 with autocast off, and the output returns to the input's dtype (it is at most the input
    over k^beta, which fits). On the CPU, PyTorch has no half-precision LRN at all. Same constants, same state dict
    (none), same name in layer tables as PyTorch's module.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype not in HALF_DTYPES:
            return super().forward(x)
        autocast = torch.amp.is_autocast_available(x.device.type)
        with torch.autocast(x.device.type, enabled=False) if autocast else contextlib.nullcontext():
            return super().forward(x.float()).to(x.dtype)


def paper_lrn(size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> LocalResponseNorm:
    """LRN with a paper's constants, converted to PyTorch's convention.

    Krizhevsky et al. 2012 §3.3 define b = a / (k + alpha * sum_{n neighbours} a^2)^beta: alpha multiplies the
    plain *sum*. ``nn.LocalResponseNorm`` (like Caffe) divides alpha by ``size`` (it averages), so the paper's
    alpha is passed as ``alpha * size``. Paper constants: k=2, n=5, alpha=1e-4, beta=0.75.
    """
    return LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)
