"""Local response normalisation as the 2012-2014 papers define it."""

from __future__ import annotations

from torch import nn


def paper_lrn(size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0) -> nn.LocalResponseNorm:
    """LRN with a paper's constants, converted to PyTorch's convention.

    Krizhevsky et al. 2012 §3.3 define b = a / (k + alpha * sum_{n neighbours} a^2)^beta: alpha multiplies the
    plain *sum*. ``nn.LocalResponseNorm`` (like Caffe) divides alpha by ``size`` (it averages), so the paper's
    alpha is passed as ``alpha * size``. Paper constants: k=2, n=5, alpha=1e-4, beta=0.75.
    """
    return nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)
