"""FractalNet: Larsson, Maire, Shakhnarovich. FractalNet: Ultra-Deep Neural Networks without Residuals. ICLR 2017.

Expansion rule (§2, Fig. 1): f_1(z) = conv(z), f_{C+1}(z) = join(f_C(f_C(z)), conv(z)), join = element-wise mean.
Flattened, a block has C columns; column j (0 = shallowest) is a chain of 2^j convs, 2^C - 1 convs in all, and a
join averages every column that ends at the same depth. B blocks give a deepest path of B * 2^(C-1) convs.

=================  ======================================================  ==========
name               what                                                    params
=================  ======================================================  ==========
``fractalnet20``   CIFAR, B=5, C=3, widths 64-128-256-512-512 (20 convs)   33,714,314
``fractalnet40``   CIFAR, B=5, C=4, same widths (40 convs)                 76,084,554
=================  ======================================================  ==========

Where the paper is silent we follow the authors' generator (gustavla/fractalnet ``generation/fractalnet.py``,
``globals.crox``, ``caffe/src/caffe/layers/fractal_join_layer.cpp``):

- Conv unit: conv3x3 (with bias) -> dropout -> BatchNorm -> ReLU. The Caffe BatchNorm layer has no learned scale or
  shift (no Scale layer follows it), so the BN here is ``affine=False`` and the conv bias is kept (the bias is
  redundant before BN in training; it is what the authors' nets have).
- Pooling: 2x2 max pool after every block (5 in all: 32x32 -> 1x1), then one FC. The generator pools **each column
  before the block's last join** (the snf/keras-fractalnet README reports the paper noting this swap "for
  convenience"). Max-pool and mean do not commute, so we do the same: pool every column, then join.
- Dropout (§4): per block 0, 0.1, 0.2, 0.3, 0.4, placed after each conv, before BN.
- Drop-path (§3.1), per mini-batch: with probability ``global_drop_ratio`` (0.5, half the mini-batches) one column,
  drawn uniformly, is the only path through every join of the net (global), so the mini-batch runs that column
  alone, a plain chain; otherwise each join drops each input with probability ``local_drop_prob`` (0.15), redrawing
  one survivor uniformly when all were dropped (local), and a dropped input is not computed, nor whatever feeds only
  dropped inputs (`FractalBlock.plan`). Layers off the mini-batch's paths do not run at all: no forward, no
  gradient (``None``; hence ``skips_layers``), no BN statistics update. The authors' Caffe FractalJoin implements
  local drop-path only (it computes a dropped input and multiplies it by 0); their global drop-path code was never
  released. Draws use the torch (CPU) RNG only: ``torch.manual_seed`` reproduces them, equally seeded processes
  (distributed ranks) draw the same paths.
- Init: Caffe's "xavier" filler, U(-sqrt(3/fan_in), sqrt(3/fan_in)), biases 0.
- ``eval_column``: in eval mode, run a single column (0 = shallowest, -1 or C-1 = deepest) as a plain chain of
  B * 2^column convs; ``None`` (default) evaluates the whole net with every join averaging all its inputs.

Parameter count (unresolved): the DenseNet paper's Table 2 lists "FractalNet, depth 21, 38.6M" for CIFAR, which we
could not re-verify in the FractalNet paper's text. With the authors' widths we count 33,714,314 (this build),
33,724,618 with bias-free convs and affine BN, 33,734,922 with both; 100 classes add 46,170. No natural variant
reproduces 38.6M: C=4 gives 76.1M; widths 96-192-384-512-512 give 40.8M; a 2x2x512 FC input gives 33.75M; BN
running statistics add 20,608. A search over all non-decreasing 5-tuples of widths drawn from 16 values between 32
and 1024 (with or without conv bias and BN affine) hits the 38.55-38.65M window only with irregular widths such as
32-32-48-448-768 or 64-64-192-384-768. We therefore treat 38.6M as unexplained.

Deviations: none known; the 38.6M figure is not matched (see above). ``drop_path=False, dropout=0`` gives the paper's
unregularised "plain" rows of Table 1.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..registry import ModelInfo, PaperResult, register_model

PAPER = (
    "Larsson, Maire, Shakhnarovich. FractalNet: Ultra-Deep Neural Networks without Residuals. ICLR 2017 "
    "(arXiv:1605.07648)"
)


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


@dataclass(frozen=True)
class FractalNetSpec:
    columns: int  # C; the deepest column has 2^(C-1) convs per block
    widths: tuple[int, ...]  # conv channels of each block (B = len(widths)); §4: 64, 128, 256, 512, 512
    dropout_rates: tuple[float, ...]  # per block; §4: 0%, 10%, 20%, 30%, 40%


_WIDTHS = (64, 128, 256, 512, 512)
_DROPOUT = (0.0, 0.1, 0.2, 0.3, 0.4)
SPECS: dict[str, FractalNetSpec] = {
    # §4 (CIFAR/SVHN): B=5 blocks; C=3 gives the 20-layer net, C=4 the 40-layer one (Fig. 1 shows C=4)
    "fractalnet20": FractalNetSpec(3, _WIDTHS, _DROPOUT),
    "fractalnet40": FractalNetSpec(4, _WIDTHS, _DROPOUT),
}


class FractalNet(nn.Module):
    """B fractal blocks (each ending in a 2x2 max pool) -> FC. Inputs must be 32x32 (5 pools to 1x1, then the FC).

    ``dropout``: the rate after every conv; None (default) is the spec's per-block schedule (§4: 0, 0.1, 0.2, 0.3,
    0.4), a float the same rate in every block, a tuple one rate per block, 0 no dropout.
    """

    def __init__(
        self,
        spec: FractalNetSpec,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        drop_path: bool = True,
        dropout: float | tuple[float, ...] | None = None,
        local_drop_prob: float = 0.15,
        global_drop_ratio: float = 0.5,
        eval_column: int | None = None,
    ) -> None:
        super().__init__()
        self.num_columns = spec.columns
        self.drop_path = drop_path
        self.global_drop_ratio = global_drop_ratio
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        for b, (width, rate) in enumerate(zip(spec.widths, _dropout_rates(dropout, spec), strict=True), start=1):
            blocks[f"block{b}"] = FractalBlock(
                channels, width, num_columns=spec.columns, dropout=rate, local_drop_prob=local_drop_prob
            )
            channels = width
        self.stages = nn.Sequential(blocks)
        self.head = nn.Sequential(OrderedDict(flatten=nn.Flatten(), fc=nn.Linear(channels, num_classes)))
        self.eval_column = eval_column
        self.global_column: int | None = None  # column drawn for the last training batch; None: local or off

        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                bound = math.sqrt(3.0 / nn.init._calculate_fan_in_and_fan_out(m.weight)[0])  # Caffe "xavier"
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    @property
    def skips_layers(self) -> bool:
        """Drop-path leaves the layers off a mini-batch's paths unused (a DDP wrapper must allow it)."""
        return self.drop_path

    @property
    def eval_column(self) -> int | None:
        """Column run alone in eval mode (0 = shallowest; negative counts from the deepest); None: whole net."""
        return self._eval_column

    @eval_column.setter
    def eval_column(self, column: int | None) -> None:
        if column is not None:
            if not -self.num_columns <= column < self.num_columns:
                raise ValueError(f"eval_column must be in [{-self.num_columns}, {self.num_columns - 1}], got {column}")
            column %= self.num_columns
        self._eval_column = column

    def column_depth(self, column: int) -> int:
        """Convs on the path of ``column`` through the whole net: B * 2^column (deepest: B * 2^(C-1))."""
        return len(self.stages) * 2 ** (column % self.num_columns)

    def forward(self, x: Tensor) -> Tensor:
        column, local = None, False
        if not self.training:
            column = self.eval_column
        elif self.drop_path:
            # §3.1: global drop-path on a share of the mini-batches (one column, the same through every block, runs
            # alone), local on the rest.
            if torch.rand(()).item() < self.global_drop_ratio:
                column = int(torch.randint(self.num_columns, ()).item())
            else:
                local = True
        self.global_column = column if self.training else None
        for block in self.stages:
            x = block(x, column=column, local=local)
        return self.head(x)


def _dropout_rates(dropout: float | tuple[float, ...] | None, spec: FractalNetSpec) -> tuple[float, ...]:
    """Per-block rates from the ``dropout`` knob (see `FractalNet`); a bool (the former on/off switch) is refused."""
    if dropout is None:
        return spec.dropout_rates
    rates = tuple(dropout) if isinstance(dropout, tuple) else (dropout,) * len(spec.widths)
    if isinstance(dropout, bool) or len(rates) != len(spec.widths) or not all(0.0 <= r < 1.0 for r in rates):
        raise ValueError(f"dropout must be a rate in [0, 1), {len(spec.widths)} of them or None, got {dropout}")
    return rates


_TABLE1 = "Larsson et al. 2017, Table 1 (20 layers; as quoted in the khanrc/pt.fractalnet README)"
_DATASETS = ("CIFAR-10 test", "CIFAR-10 test (+)", "CIFAR-10 test (++)", "CIFAR-100 test", "CIFAR-100 test (+)",
             "CIFAR-100 test (++)")  # (+): translation/mirroring; (++): "more substantial" augmentation
_ROWS = {
    "drop-path + dropout": (7.33, 4.60, 4.59, 28.20, 23.73, 23.36),
    "deepest column alone": (7.27, 4.68, 4.63, 29.05, 24.32, 23.60),
    "plain, no drop-path/dropout": (10.18, 5.22, 5.11, 35.34, 23.30, 22.85),
}
_FRACTALNET20_RESULTS = tuple(
    PaperResult("top1_error_pct", value, f"{dataset}, {row}", _TABLE1)
    for row, values in _ROWS.items()
    for dataset, value in zip(_DATASETS, values)
)
_UNRESOLVED = (
    "paper-cited 38.6M (DenseNet Table 2, 'FractalNet depth 21') is not reproduced: the authors' widths give "
    "33,714,314 (Caffe units: conv bias, BN without affine); see the module docstring"
)

@dataclass(frozen=True)
class _Row:
    params: int  # exact, this build at 10 classes
    description: str
    results: tuple[PaperResult, ...] = ()
    deviations: tuple[str, ...] = ()
    paper_params: str | None = None  # as printed


_ROWS_BY_NAME = {
    "fractalnet20": _Row(
        33_714_314,
        "CIFAR FractalNet, B=5, C=3: 20 convs on the deepest path + FC",
        results=_FRACTALNET20_RESULTS,
        deviations=(_UNRESOLVED,),
        paper_params="38.6M",
    ),
    "fractalnet40": _Row(76_084_554, "CIFAR FractalNet, B=5, C=4: 40 convs on the deepest path + FC"),
}

# the fields every FractalNet row shares
_FRACTALNET = dict(
    family="fractalnet", paper=PAPER, input_size=(3, 32, 32), num_classes=10, paper_params_verified=False,
    recipe="fractalnet",
)

for _name, _row in _ROWS_BY_NAME.items():
    register_model(
        FractalNet,
        ModelInfo.row(
            _FRACTALNET,
            name=_name,
            params=_row.params,
            description=_row.description,
            paper_params=_row.paper_params,
            paper_params_source="Huang et al. 2017 (DenseNet), Table 2, 'FractalNet, depth 21' (unexplained)"
            if _row.paper_params
            else None,
            results=_row.results,
            deviations=_row.deviations,
        ),
        spec=SPECS[_name],
    )
