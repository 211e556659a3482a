"""Local response normalisation as one ONNX ``LRN`` node.

PyTorch computes ``nn.LocalResponseNorm`` from elementary operators (square, pad, average pool, pow), so a traced
graph holds those instead of one LRN. Krizhevsky et al. 2012 §3.3 (and GoogLeNet, Szegedy et al. 2015 Fig. 3) use
LRN as a single layer, and ONNX has it as an operator with PyTorch's convention::

    y = x / (bias + alpha / size * sum of x^2 over ``size`` neighbouring channels) ^ beta

(``nn.LocalResponseNorm``: ``k`` is ONNX's ``bias``; both divide ``alpha`` by ``size``). For the ONNX export every
``nn.LocalResponseNorm`` of a copy of the network is replaced by :class:`OnnxLRN`, which calls the opaque operator
``cnnzoo::local_response_norm``; the exporter's translation table turns it into ``LRN`` with the module's constants.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


@torch.library.custom_op("cnnzoo::local_response_norm", mutates_args=())
def local_response_norm(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    return F.local_response_norm(x, size, alpha=alpha, beta=beta, k=k)


@local_response_norm.register_fake
def _(x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
    return torch.empty_like(x)


class OnnxLRN(nn.Module):
    """``nn.LocalResponseNorm`` with the same constants, traced as one operator."""

    def __init__(self, lrn: nn.LocalResponseNorm) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = lrn.size, lrn.alpha, lrn.beta, lrn.k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.cnnzoo.local_response_norm(x, self.size, self.alpha, self.beta, self.k)


def with_onnx_lrn(net: nn.Module) -> nn.Module:
    """``net`` itself when it has no LRN; otherwise a copy whose LRN layers are :class:`OnnxLRN`."""
    if not any(isinstance(m, nn.LocalResponseNorm) for m in net.modules()):
        return net
    net = copy.deepcopy(net)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.LocalResponseNorm):
                setattr(parent, name, OnnxLRN(child))
    return net


def translation_table() -> dict:
    """``torch.onnx.export(custom_translation_table=...)``: the operator above -> ONNX ``LRN``."""
    from onnxscript import opset18 as op

    def lrn(x, size: int, alpha: float, beta: float, k: float):
        return op.LRN(x, size=size, alpha=alpha, beta=beta, bias=k)

    return {torch.ops.cnnzoo.local_response_norm.default: lrn}


__all__ = ["OnnxLRN", "local_response_norm", "translation_table", "with_onnx_lrn"]
