"""Test-time augmentation: average the network's softmax over several views of each image.

- ``flip``: the image and its horizontal reflection;
- ``10crop``: Krizhevsky et al. 2012 §4.1 ("extracting five 224x224 patches (the four corner patches and the center
  patch) as well as their horizontal reflections ... and averaging the predictions made by the network's softmax
  layer on the ten patches"), the protocol the lecture quotes for AlexNet and VGG. The view the patches are cut from
  is the network's evaluation view before its centre crop: short side resized to ``eval_resize`` (256 for a 224 input),
  centre square ``eval_resize`` x ``eval_resize`` (AlexNet's 256x256 images).

The wrapped module returns log-probabilities, log(mean softmax), computed as a log-sum-exp of log-softmaxes (no
underflow); cross-entropy of them is the negative log-likelihood of the averaged prediction, and their top-k is the
top-k of the average, so :func:`cnnzoo.metrics.classification_metrics` reports TTA metrics unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

TTA_MODES = ("none", "flip", "10crop")


def mean_softmax_log(logits: list[torch.Tensor]) -> torch.Tensor:
    """log(mean_i softmax(logits_i)), stably."""
    stacked = torch.stack([torch.log_softmax(z.float(), dim=1) for z in logits])
    return torch.logsumexp(stacked, dim=0) - math.log(len(logits))


def ten_crop_boxes(view: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of the four corner patches and the centre patch of a ``view`` x ``view`` image."""
    far, mid = view - size, (view - size) // 2
    return [(0, 0), (0, far), (far, 0), (far, far), (mid, mid)]


class TestTimeAugmentation(nn.Module):
    """``net`` evaluated on several views of each input; returns log(mean softmax) (``mode="none"``: the logits)."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, net: nn.Module, mode: str = "none", *, size: int | None = None) -> None:
        super().__init__()
        if mode not in TTA_MODES:
            raise ValueError(f"mode must be one of {', '.join(TTA_MODES)}, got {mode!r}")
        if mode == "10crop" and size is None:
            raise ValueError("10crop needs the network's input side (size=)")
        self.net, self.mode, self.size = net, mode, size

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.mode == "flip":
            return [x, x.flip(3)]
        if self.mode == "10crop":
            s = self.size
            crops = [x[..., top : top + s, left : left + s] for top, left in ten_crop_boxes(x.shape[-1], s)]
            return crops + [c.flip(3) for c in crops]
        return [x]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "none":
            return self.net(x)
        return mean_softmax_log([self.net(v) for v in self.views(x)])


__all__ = ["TTA_MODES", "TestTimeAugmentation", "mean_softmax_log", "ten_crop_boxes"]
