"""ResNet: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

    name                 layout (paper)                         shortcut        params (classes)
    resnet18 .. 152      Table 1, ImageNet, stride in 1x1 (v1)  B (projection)  11,689,512 .. 60,192,808 (1000)
    resnet18_tv .. _tv   the same, stride in 3x3 (v1.5)         B               torchvision's; loads its weights
    resnet20 .. 1202     §4.2, CIFAR, 6n+2 layers, 16/32/64     A (zero pad)    269,722 .. 19,421,274 (10)
    plain18, plain34     §3.3, Fig. 3 middle, Table 1 layouts    none            11,515,688 / 21,623,848 (1000)
    plain20 .. 110       §4.2, the CIFAR nets without shortcuts  none            = resnet20 .. 110 (10)

The plain networks are the residual ones without their shortcuts (He et al. §3.3: "based on the above plain
network, we insert shortcut connections"): each block outputs ReLU(F(x)) instead of ReLU(F(x) + x). Option A
shortcuts carry no parameters, so plain-20 has exactly ResNet-20's parameters; plain-18/34 lack the three 1x1
projections (and their batch norms) of this build's option-B ResNet-18/34.

v1 vs v1.5: He et al. (and their Caffe models) stride the first 1x1 of a downsampling bottleneck; fb.resnet.torch and
torchvision stride the 3x3 ("ResNet V1.5", torchvision's docstring). Same parameters, more multiply-adds (ResNet-50:
3.858 vs 4.089 G) and a different function, hence two names. Basic-block nets (18, 34) have no 1x1, so resnet18 and
resnet18_tv are the same network.

Pre-activation ResNets (He et al. 2016b) and Wide ResNets are this class with pre-activation units in the spec.
Init: He et al. §3.4 "initialize the weights as in [He et al. 2015]": `init_he_` (fan-out normal, as fb.resnet.torch
and torchvision). Every model also takes ``drop_path_rate`` (1 - p_L, the drop probability of the last block) and
``drop_path_mode`` (see `cnnzoo.layers.drop_path`); the default 0 is the paper's network.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..layers.drop_path import DropPathMode, StochasticDepth, drop_path_modules
from ..layers.init import init_he_
from ..layers.residual import BasicBlock, Bottleneck, PreActBlock, PreActBottleneck, make_head, make_stage, make_stem
from ..layers.shortcut import ShortcutType
from ..registry import ModelInfo, PaperResult, register_model
from ..layers.residual_keys import torchvision_key_map

PAPER = "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 (arXiv:1512.03385)"


@dataclass(frozen=True)
class ResNetSpec:
    """One network of the residual family: post-activation units (He et al. 2016a) or pre-activation units
    (He et al. 2016b, `PreActBlock`/`PreActBottleneck`)."""

    block: type[BasicBlock] | type[Bottleneck] | type[PreActBlock] | type[PreActBottleneck]
    depths: tuple[int, ...]  # residual blocks per stage
    widths: tuple[int, ...]  # per stage, before the bottleneck's x4 expansion (He et al. Table 1)
    stem: Literal["imagenet", "cifar"]
    stem_channels: int = 64
    # §3.3: A zero-padded identity, B projection where the shape changes; None: no shortcut (a plain network)
    shortcut: ShortcutType | None = "B"
    stride_in_1x1: bool = True  # bottleneck only: v1 (paper) True, v1.5 (torchvision) False
    cardinality: int = 1  # post-activation bottleneck only: Xie et al. 2017's groups of the 3x3
    bottleneck_width: int = 64  # post-activation bottleneck only: Xie et al.'s d at the first stage (64 = ResNet)

    @property
    def preact(self) -> bool:
        return self.block in (PreActBlock, PreActBottleneck)


class ResNet(nn.Module):
    """stem -> stages (stride 2 at the first block of every stage but the first) -> global average pool -> fc.

    Pre-activation specs (He et al. 2016b): the CIFAR stem is a bare conv, the first unit of every stage applies its
    BN-ReLU before the split (the ImageNet stem's BN-ReLU is the first stage's), and a BN-ReLU precedes the pool.

    Args:
        dropout: Zagoruyko & Komodakis §2.4, between the two convs of a pre-activation basic unit (WRN-d-k-dropout);
            0 (default) is the plain unit.
        drop_path_rate: drop probability of the last residual block (= 1 - p_L of Huang et al. 2016); 0 (default)
            is the paper's network.
        drop_path_mode: ``"row"`` per-sample drop path with timm's linear ramp from 0 (default), or ``"batch"``,
            Huang et al.'s whole-batch drop with p_l = 1 - l/L (1 - p_L) and test-time scaling by p_l.
        zero_pad: option A's zero channels after the input's (``"append"``, default) or half before and half after
            (``"split"``: akamaster/pytorch_resnet_cifar10's layout; the paper does not say).
    """

    def __init__(
        self,
        spec: ResNetSpec,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.0,
        drop_path_rate: float = 0.0,
        drop_path_mode: DropPathMode = "row",
        zero_pad: Literal["append", "split"] = "append",
    ) -> None:
        super().__init__()
        self.spec = spec
        if spec.shortcut is None and spec.block not in (BasicBlock, Bottleneck):
            raise ValueError("plain networks (shortcut=None) are built from post-activation blocks only")
        if zero_pad not in ("append", "split") or (zero_pad == "split" and spec.shortcut != "A"):
            raise ValueError(f"zero_pad={zero_pad!r}: 'append' (default) or 'split', for option A shortcuts only")
        block_kwargs: dict[str, Any] = {"shortcut": "A_split" if zero_pad == "split" else spec.shortcut}
        if spec.block in (Bottleneck, PreActBottleneck):
            block_kwargs["stride_in_1x1"] = spec.stride_in_1x1
        if spec.block is Bottleneck:
            block_kwargs.update(cardinality=spec.cardinality, bottleneck_width=spec.bottleneck_width)
        if dropout > 0:
            if spec.block is not PreActBlock:
                raise ValueError("dropout between the convs is defined for pre-activation basic (3x3, 3x3) units only")
            block_kwargs["dropout"] = dropout
        self.stem = make_stem(spec.stem, in_channels, spec.stem_channels, norm=not spec.preact)
        drop_paths = iter(drop_path_modules(drop_path_rate, sum(spec.depths), mode=drop_path_mode))
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        channels = spec.stem_channels
        for index, (depth, width) in enumerate(zip(spec.depths, spec.widths, strict=True), start=1):
            out_channels = width * spec.block.expansion
            first_block = None
            if spec.preact:  # He et al. 2016b appendix: the stage's first unit activates before the split
                first_block = {"preact": "none" if index == 1 and spec.stem == "imagenet" else "shared"}
            stages[f"stage{index}"] = make_stage(
                spec.block,
                channels,
                out_channels,
                depth,
                stride=1 if index == 1 else 2,
                drop_paths=[next(drop_paths) for _ in range(depth)],
                first_block=first_block,
                **block_kwargs,
            )
            channels = out_channels
        self.stages = nn.Sequential(stages)
        self.head = make_head(channels, num_classes, preact=spec.preact)
        init_he_(self)

    @property
    def skips_layers(self) -> bool:
        """True when a block can be dropped whole in training (``drop_path_mode="batch"``, Huang et al. 2016):
        its parameters then go unused in that step, which a distributed wrapper must allow."""
        return any(isinstance(m, StochasticDepth) for m in self.modules())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stages(x)
        return self.head(x)


IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_WIDTHS = (16, 32, 64)
# Smallest inputs (the tests run there). The nets end in adaptive average pooling, so any size runs, but the last
# stage must keep a 2x2 map: at 1x1, batch norm over a batch of 2 sees two values per channel, outputs +-1 and
# back-propagates exploding gradients. ImageNet nets downsample by 32, CIFAR nets by 4.
IMAGENET_MIN_SIZE = 64
CIFAR_MIN_SIZE = 8


@dataclass(frozen=True)
class _ImageNetRow:
    """One ImageNet ResNet: He et al. Table 1 and torchvision's IMAGENET1K_V1 weights meta."""
    block: type[BasicBlock] | type[Bottleneck]
    depths: tuple[int, int, int, int]  # Table 1: conv2_x .. conv5_x block counts
    params: int  # exact, this build at 1000 classes (v1 and v1.5 alike)
    table1_flops: float  # Table 1 "FLOPs", which He et al. count as multiply-adds (1.8 .. 11.3 x 10^9)
    tv_macs: float  # torchvision meta "_ops" (v1.5 conv+fc MACs at 224)
    tv_acc1: float  # torchvision meta acc@1 (and acc@5 below), 1 crop 224
    tv_acc5: float
    results: tuple[PaperResult, ...] = ()  # the authors' released Caffe models


@dataclass(frozen=True)
class _CifarRow:
    """One CIFAR ResNet of He et al. §4.2 / Table 6."""
    n: int  # blocks per stage: depth 6n + 2
    params: int  # exact, this build at 10 classes
    paper_params: float  # Table 6
    error: float  # Table 6, CIFAR-10 test error % (+aug)


def _top_errors(top1: float, top5: float, dataset: str, source: str) -> tuple[PaperResult, ...]:
    return (PaperResult("top1_error_pct", top1, dataset, source), PaperResult("top5_error_pct", top5, dataset, source))


_README = "KaimingHe/deep-residual-networks README (10-crop: 'the same as those in the paper')"
_README_1CROP = "KaimingHe/deep-residual-networks README (the released Caffe models)"
_TEN_CROP, _ONE_CROP = "ILSVRC-2012 val, 10-crop, short side 256", "ILSVRC-2012 val, 1 crop 224, short side 256"


def _caffe_results(top1_10: float, top5_10: float, top1_1: float, top5_1: float) -> tuple[PaperResult, ...]:
    return _top_errors(top1_10, top5_10, _TEN_CROP, _README) + _top_errors(top1_1, top5_1, _ONE_CROP, _README_1CROP)


_IMAGENET: dict[int, _ImageNetRow] = {
    18: _ImageNetRow(BasicBlock, (2, 2, 2, 2), 11_689_512, table1_flops=1.8e9, tv_macs=1.814e9,
                     tv_acc1=69.758, tv_acc5=89.078),
    34: _ImageNetRow(BasicBlock, (3, 4, 6, 3), 21_797_672, table1_flops=3.6e9, tv_macs=3.664e9,
                     tv_acc1=73.314, tv_acc5=91.42),
    50: _ImageNetRow(Bottleneck, (3, 4, 6, 3), 25_557_032, table1_flops=3.8e9, tv_macs=4.089e9,
                     tv_acc1=76.13, tv_acc5=92.862, results=_caffe_results(22.9, 6.7, 24.7, 7.8)),
    101: _ImageNetRow(Bottleneck, (3, 4, 23, 3), 44_549_160, table1_flops=7.6e9, tv_macs=7.801e9,
                      tv_acc1=77.374, tv_acc5=93.546, results=_caffe_results(21.8, 6.1, 23.6, 7.1)),
    152: _ImageNetRow(Bottleneck, (3, 8, 36, 3), 60_192_808, table1_flops=11.3e9, tv_macs=11.514e9,
                      tv_acc1=78.312, tv_acc5=94.046, results=_caffe_results(21.4, 5.7, 23.0, 6.7)),
}
_CIFAR: dict[int, _CifarRow] = {
    20: _CifarRow(n=3, params=269_722, paper_params=0.27e6, error=8.75),
    32: _CifarRow(n=5, params=464_154, paper_params=0.46e6, error=7.51),
    44: _CifarRow(n=7, params=658_586, paper_params=0.66e6, error=7.17),
    56: _CifarRow(n=9, params=853_018, paper_params=0.85e6, error=6.97),
    110: _CifarRow(n=18, params=1_727_962, paper_params=1.7e6, error=6.43),
    1202: _CifarRow(n=200, params=19_421_274, paper_params=19.4e6, error=7.93),
}
_TABLE6 = "He et al. 2016, Table 6"


@dataclass(frozen=True)
class _PlainImageNetRow:
    """One ImageNet plain net of He et al. §3.3 (Fig. 3 middle, Table 1 layout, Table 2)."""
    params: int  # exact, this build at 1000 classes: ResNet-18/34 less the three projection shortcuts (conv + BN)
    top1_error: float  # Table 2: top-1 error (%, 10-crop) on ILSVRC-2012 val


_PLAIN_IMAGENET = {18: _PlainImageNetRow(11_515_688, 27.94), 34: _PlainImageNetRow(21_623_848, 28.54)}
# He et al. Fig. 6 (left) trains plain-20/32/44/56 on CIFAR-10; plain-110 is the same construction at n = 18
_PLAIN_CIFAR = (20, 32, 44, 56, 110)
_OPTION_B = (
    "He et al. Table 2 trains ResNet-18/34 with option A shortcuts (§4.1); this build uses option B (Table 3's "
    "ResNet-34 B, the option of the deeper nets, and torchvision's layout)"
)

SPECS: dict[str, ResNetSpec] = {
    # He et al. Table 1; option B (§3.3; §4.1 uses B for 50/101/152; Table 3 gives ResNet-34 B)
    **{f"resnet{d}": ResNetSpec(row.block, row.depths, IMAGENET_WIDTHS, "imagenet") for d, row in _IMAGENET.items()},
    # torchvision's v1.5: stride on the 3x3 of the downsampling bottleneck
    **{
        f"resnet{d}_tv": ResNetSpec(row.block, row.depths, IMAGENET_WIDTHS, "imagenet", stride_in_1x1=False)
        for d, row in _IMAGENET.items()
    },
    # He et al. §4.2: 3x3 conv 16, then 3 stages of n basic blocks on 32/16/8 maps, widths 16/32/64, option A
    **{
        f"resnet{d}": ResNetSpec(BasicBlock, (row.n,) * 3, CIFAR_WIDTHS, "cifar", stem_channels=16, shortcut="A")
        for d, row in _CIFAR.items()
    },
    # He et al. §3.3 / Fig. 3 middle: the Table 1 layouts without shortcuts
    **{
        f"plain{d}": ResNetSpec(_IMAGENET[d].block, _IMAGENET[d].depths, IMAGENET_WIDTHS, "imagenet", shortcut=None)
        for d in _PLAIN_IMAGENET
    },
    # He et al. §4.2: "the plain/residual architectures follow the form in Fig. 3 (middle/right)"
    **{
        f"plain{d}": ResNetSpec(BasicBlock, (_CIFAR[d].n,) * 3, CIFAR_WIDTHS, "cifar", stem_channels=16, shortcut=None)
        for d in _PLAIN_CIFAR
    },
}

for _depth, _row in _IMAGENET.items():
    _bottleneck = _row.block is Bottleneck
    _common = dict(
        family="resnet",
        paper=PAPER,
        input_size=(3, 224, 224),
        num_classes=1000,
        params=_row.params,
        min_size=IMAGENET_MIN_SIZE,
        recipe="resnet_imagenet",
    )
    register_model(
        ResNet,
        ModelInfo(
            name=f"resnet{_depth}",
            description=f"ResNet-{_depth} (He et al. Table 1), {'bottleneck' if _bottleneck else 'basic'} blocks, "
            "projection shortcuts where the shape changes"
            + (", stride 2 in the first 1x1 of a downsampling bottleneck (v1)" if _bottleneck else ""),
            paper_macs=_row.table1_flops,
            paper_macs_source="He et al. 2016, Table 1 ('FLOPs', counted as multiply-adds, rounded)",
            results=_row.results,
            deviations=() if _bottleneck else (_OPTION_B,),
            torchvision=None if _bottleneck else f"resnet{_depth}",
            **_common,
        ),
        torchvision_key_map=None if _bottleneck else torchvision_key_map,
        spec=SPECS[f"resnet{_depth}"],
    )
    _weights = f"torchvision ResNet{_depth}_Weights.IMAGENET1K_V1 meta"
    register_model(
        ResNet,
        ModelInfo(
            name=f"resnet{_depth}_tv",
            description=f"torchvision's ResNet-{_depth} (v1.5: stride in the 3x3 of a downsampling bottleneck); "
            "loads torchvision state dicts",
            paper_params=float(_row.params),
            paper_params_source=f"{_weights} num_params",
            paper_macs=_row.tv_macs,
            paper_macs_source=f"{_weights} _ops (= conv+fc MACs)",
            results=_top_errors(
                round(100 - _row.tv_acc1, 3),
                round(100 - _row.tv_acc5, 3),
                "ILSVRC-2012 val, 1 crop 224, resize 256 (torchvision weights)",
                _weights,
            ),
            deviations=("stride 2 in the 3x3, not the first 1x1, of a downsampling bottleneck (v1.5)",)
            if _bottleneck
            else (),
            torchvision=f"resnet{_depth}",
            **_common,
        ),
        torchvision_key_map=torchvision_key_map,
        spec=SPECS[f"resnet{_depth}_tv"],
    )

for _depth, _row in _CIFAR.items():
    register_model(
        ResNet,
        ModelInfo(
            name=f"resnet{_depth}",
            family="resnet",
            paper=PAPER,
            input_size=(3, 32, 32),
            num_classes=10,
            params=_row.params,
            description=f"CIFAR ResNet-{_depth} (He et al. §4.2): 6n+2 layers with n={_row.n}, "
            "widths 16/32/64 on 32/16/8 maps, zero-padded identity shortcuts (option A)",
            min_size=CIFAR_MIN_SIZE,
            paper_params=_row.paper_params,
            paper_params_source=_TABLE6,
            results=(PaperResult("top1_error_pct", _row.error, "CIFAR-10 test (+aug)", _TABLE6),),
            recipe="resnet_cifar",
        ),
        spec=SPECS[f"resnet{_depth}"],
    )

for _depth, _plain in _PLAIN_IMAGENET.items():
    register_model(
        ResNet,
        ModelInfo(
            name=f"plain{_depth}",
            family="resnet",
            paper=PAPER,
            input_size=(3, 224, 224),
            num_classes=1000,
            params=_plain.params,
            description=f"{_depth}-layer plain network (He et al. §3.3, Fig. 3 middle): the Table 1 layout of "
            f"ResNet-{_depth} without shortcuts, each block ReLU(F(x))",
            min_size=IMAGENET_MIN_SIZE,
            paper_macs=_IMAGENET[_depth].table1_flops,
            paper_macs_source="He et al. 2016, Table 1 ('FLOPs', counted as multiply-adds, rounded; the layout the "
            "plain and residual nets of Table 2 share)",
            results=(
                PaperResult("top1_error_pct", _plain.top1_error, _TEN_CROP, "He et al. 2016, Table 2", verified=False),
            ),
            recipe="resnet_imagenet",
        ),
        spec=SPECS[f"plain{_depth}"],
    )

for _depth in _PLAIN_CIFAR:
    register_model(
        ResNet,
        ModelInfo(
            name=f"plain{_depth}",
            family="resnet",
            paper=PAPER,
            input_size=(3, 32, 32),
            num_classes=10,
            params=_CIFAR[_depth].params,  # option A shortcuts are parameter-free: the same count as ResNet
            description=f"CIFAR plain-{_depth} (He et al. §4.2, Fig. 6 left): ResNet-{_depth} (n={_CIFAR[_depth].n}) "
            "without shortcuts, each block ReLU(F(x))",
            min_size=CIFAR_MIN_SIZE,
            recipe="resnet_cifar",
        ),
        spec=SPECS[f"plain{_depth}"],
    )
