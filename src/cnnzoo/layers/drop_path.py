"""Dropping whole residual branches: the Stochastic Depth paper's rule and timm's per-sample drop path.

Two procedures share one knob, ``drop_path_rate``: the drop probability of the *last* residual block, i.e.
``1 - p_L`` in Huang et al.'s notation. They differ in what is drawn and how the expectation is kept:

                    "batch": Huang et al. 2016            "row": timm / EfficientNet
                    (`StochasticDepth`)                   (`DropPath`)
    draw            one Bernoulli per mini-batch, block   one Bernoulli per sample, block
    training        branch x b, b in {0, 1}               branch x b / keep_prob
    test            branch x p_l (survival probability)   branch (identity)
    schedule        p_l = 1 - l/L (1 - p_L), l = 1..L     drop_l = rate x (l-1)/(L-1): 0 at the first block
                    (eq. 4)

In both, a block's test-time branch is the expectation of its training-time branch; they are not the same
procedure (what is dropped together, and where the 1/p factor goes), nor the same cost: a dropped "batch" block is
not computed at all (the training speed-up Huang et al. report), a "row" branch is always computed in full.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

DropPathMode = Literal["row", "batch"]


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Per-sample drop path (timm ``drop_path``): zero whole samples of ``x`` with probability ``drop_prob`` and
    rescale the survivors by ``1 / keep_prob`` so the expectation is unchanged; the identity in eval."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
    return x * mask.div_(keep_prob)


class DropPath(nn.Module):
    """Per-sample drop path applied to a residual branch (timm, "row" mode of ``torchvision.ops.StochasticDepth``).

    The branch is always computed, for the whole batch, and the dropped samples' rows are zeroed afterwards: a draw
    per sample cannot remove work from a batched convolution, so this mode saves no time (unlike `StochasticDepth`).
    """

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:g}"


class StochasticDepth(nn.Module):
    """Huang et al. 2016 §3: the residual branch survives with probability ``survival_prob`` (p_l).

    Training: before each mini-batch the block asks `dropped` (one Bernoulli draw for the whole batch, as their
    ``ResidualDrop.lua`` opens or closes one gate per block); a dropped block is not run at all: its branch gets no
    forward, no backward and no batch-norm statistics update, and the block passes its shortcut only (see
    `branch_dropped`). A kept branch passes this module unchanged. Test: the branch is multiplied by p_l (eq. 5;
    ``mul(1 - deathRate)`` in their code).

    The draw comes from the global torch (CPU) generator, so the decision is known on the host without a device
    sync, ``torch.manual_seed`` reproduces it, and processes seeded alike (all ranks of a distributed run) drop the
    same blocks. The parameters of a dropped block get no gradient in that step (``None``, not zeros), so a
    distributed wrapper must allow unused parameters (the model's ``skips_layers`` says so).
    """

    def __init__(self, survival_prob: float) -> None:
        super().__init__()
        if not 0.0 < survival_prob <= 1.0:
            raise ValueError(f"survival_prob must be in (0, 1], got {survival_prob}")
        self.survival_prob = survival_prob

    def dropped(self) -> bool:
        """Draw this mini-batch's gate: True (training only) when the block is dropped, with probability 1 - p_l."""
        return self.training and bool(torch.rand(()) >= self.survival_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.training else x * self.survival_prob

    def extra_repr(self) -> str:
        return f"survival_prob={self.survival_prob:g}"


def branch_dropped(drop_path: nn.Module) -> bool:
    """Whether a residual block skips its branch for this mini-batch (Huang et al. §3): a `StochasticDepth` in
    training draws its gate; any other module (``nn.Identity``, the per-sample `DropPath`) never skips."""
    return isinstance(drop_path, StochasticDepth) and drop_path.dropped()


def drop_path_schedule(drop_path_rate: float, num_blocks: int, *, mode: DropPathMode = "row") -> list[float]:
    """Drop probability of each of ``num_blocks`` residual blocks, first to last; the last one is ``drop_path_rate``.

    ``"batch"``: Huang et al. eq. (4), 1 - p_l = (l / L)(1 - p_L) for l = 1..L (``deathRate = i/#blocks * rate``).
    ``"row"``: timm's ramp ``drop_path_rate * i / (L - 1)`` for i = 0..L-1, so the first block is never dropped.
    """
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
    if mode == "batch":
        return [drop_path_rate * block / num_blocks for block in range(1, num_blocks + 1)]
    if mode == "row":
        return [drop_path_rate * block / max(num_blocks - 1, 1) for block in range(num_blocks)]
    raise ValueError(f"drop_path_mode must be 'row' or 'batch', got {mode!r}")


def drop_path_modules(drop_path_rate: float, num_blocks: int, *, mode: DropPathMode = "row") -> list[nn.Module]:
    """One branch-dropping module per residual block (``nn.Identity`` where the drop probability is 0)."""
    modules: list[nn.Module] = []
    for drop_prob in drop_path_schedule(drop_path_rate, num_blocks, mode=mode):
        if drop_prob == 0.0:
            modules.append(nn.Identity())
        elif mode == "batch":
            modules.append(StochasticDepth(1.0 - drop_prob))
        else:
            modules.append(DropPath(drop_prob))
    return modules
