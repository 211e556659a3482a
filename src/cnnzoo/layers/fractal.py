"""FractalNet's blocks (Larsson, Maire, Shakhnarovich, ICLR 2017): the conv unit, the join (§2, element-wise mean)
with its drop-path draws (§3.1), and the block f_C flattened into C columns (§2, Fig. 1). The network, its spec table
and the design notes are in `cnnzoo.models.fractalnet`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn


class FractalConv(nn.Sequential):
    """conv3x3 -> dropout -> BN -> ReLU, the unit of the authors' generator (``globals.crox``)."""

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float) -> None:
        super().__init__(
            OrderedDict(
                conv=nn.Conv2d(in_channels, out_channels, 3, padding=1),
                drop=nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
                norm=nn.BatchNorm2d(out_channels, affine=False),  # Caffe BatchNorm without a Scale layer
                relu=nn.ReLU(inplace=True),
            )
        )


class Join(nn.Module):
    """Element-wise mean of the active inputs (§2); drop-path (§3.1) chooses which inputs are active.

    ``columns`` are the block's columns feeding this join; ``active`` holds those chosen for the last call (`draw`).
    """

    def __init__(self, columns: tuple[int, ...], *, local_drop_prob: float) -> None:
        super().__init__()
        self.columns = columns
        self.local_drop_prob = local_drop_prob
        self.active: tuple[int, ...] = columns

    def draw(self, *, local: bool = False, column: int | None = None) -> tuple[int, ...]:
        """This mini-batch's active inputs: ``column`` alone (none if it does not reach this join), a local draw
        (each dropped with ``local_drop_prob``, never all: one survivor redrawn uniformly, fractal_join_layer.cpp)
        or all."""
        if column is not None:
            self.active = (column,) if column in self.columns else ()
        elif local:
            keep = torch.rand(len(self.columns)) >= self.local_drop_prob
            if not keep.any():
                keep[torch.randint(len(self.columns), ())] = True
            self.active = tuple(c for c, k in zip(self.columns, keep.tolist()) if k)
        else:
            self.active = self.columns
        return self.active

    def forward(self, *inputs: Tensor) -> Tensor:
        """The mean of ``inputs``: the outputs of the active columns only (dropped ones are never computed)."""
        scale = 1.0 / len(inputs)
        return sum(x * scale for x in inputs)


class FractalBlock(nn.Module):
    """f_C flattened into C columns; joins where columns meet; each column max-pooled before the last join."""

    def __init__(
        self, in_channels: int, out_channels: int, *, num_columns: int, dropout: float, local_drop_prob: float
    ) -> None:
        super().__init__()
        self.columns = nn.ModuleList(
            nn.Sequential(
                *(FractalConv(out_channels if i else in_channels, out_channels, dropout=dropout) for i in range(2**j))
            )
            for j in range(num_columns)
        )
        self.pools = nn.ModuleList(nn.MaxPool2d(2, stride=2) for _ in range(num_columns))
        # Step t = 1 .. 2^(C-1) along the deepest column: column j finishes a conv when 2^(C-1-j) divides t.
        depth = 2 ** (num_columns - 1)
        self.schedule = [
            tuple(j for j in range(num_columns) if t % 2 ** (num_columns - 1 - j) == 0) for t in range(1, depth + 1)
        ]
        self.joins = nn.ModuleDict(
            (f"join{t}", Join(ending, local_drop_prob=local_drop_prob))
            for t, ending in enumerate(self.schedule, start=1)
            if len(ending) > 1
        )

    def plan(self, active: dict[int, tuple[int, ...]]) -> list[tuple[int, ...]]:
        """Columns whose conv runs at each step, given each join's active inputs (``active[t]``, join at step t).

        Walking back from the block's output (the deepest column's last state): a step's convs run only when a
        later step wants their column, and a join wants only its active inputs; so a dropped input, and whatever
        feeds nothing but dropped inputs, is never computed.
        """
        wanted, steps = {len(self.columns) - 1}, []
        for t in range(len(self.schedule), 0, -1):
            ending = self.schedule[t - 1]
            step = active.get(t, ending) if wanted.intersection(ending) else ()
            wanted = wanted.difference(ending).union(step)
            steps.append(step)
        return steps[::-1]

    def forward(self, x: Tensor, *, column: int | None = None, local: bool = False) -> Tensor:
        joins = {t: self.joins[f"join{t}"] for t, ending in enumerate(self.schedule, start=1) if len(ending) > 1}
        active = {t: join.draw(local=local, column=column) for t, join in joins.items()}
        if column is not None:  # one column alone: a plain chain of 2^column convs, then the pool
            return self.pools[column](self.columns[column](x))
        last, deepest = len(self.schedule), len(self.columns) - 1
        outs = [x] * len(self.columns)
        for t, step in enumerate(self.plan(active), start=1):
            for j in step:  # column j's conv number t / 2^(C-1-j) of its 2^j
                outs[j] = self.columns[j][t // 2 ** (deepest - j) - 1](outs[j])
                if t == last:
                    outs[j] = self.pools[j](outs[j])
            if t in joins and step:
                joined = joins[t](*(outs[j] for j in step))
                for j in self.schedule[t - 1]:
                    outs[j] = joined
        return outs[-1]
