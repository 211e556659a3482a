"""ResNeXt: Xie, Girshick, Dollár, Tu, He, "Aggregated Residual Transformations for Deep Neural Networks", CVPR 2017.

    name                  cardinality x d   layout                                     params (classes)
    resnext29_8x64d       8 x 64            CIFAR: conv3x3 64, 3 stages x 3 blocks,    34,426,698 (10)
    resnext29_16x64d      16 x 64           outputs 256/512/1024                       68,155,210 (10)
    resnext50_32x4d       32 x 4            ImageNet, ResNet-50 block counts           25,028,904 (1000)
    resnext101_32x8d      32 x 8            ImageNet, ResNet-101 block counts          88,791,336 (1000)
    resnext101_64x4d      64 x 4            ImageNet, ResNet-101 block counts          83,455,272 (1000)

The block is the ResNet bottleneck in form (c) of Fig. 3: 1x1 -> grouped 3x3 (C groups of width d, doubling per
stage) -> 1x1, post-activation, projection shortcuts where the shape changes (the authors' ``models/resnext.lua``,
shortcut type B). The stride sits in the 3x3 ("as suggested in fb.resnet.torch", §4), so the ImageNet nets load
torchvision state dicts. The shared `cnnzoo.layers.residual.Bottleneck` is driven by ``cardinality`` and
``bottleneck_width``; nothing here is a new block. He init (fan-out), as ``resnext.lua``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..layers.residual import Bottleneck
from ..registry import ModelInfo, PaperResult, register_model
from .resnet import CIFAR_MIN_SIZE, IMAGENET_MIN_SIZE, ResNet, ResNetSpec, torchvision_key_map

PAPER = (
    "Xie, Girshick, Dollár, Tu, He. Aggregated Residual Transformations for Deep Neural Networks. "
    "CVPR 2017 (arXiv:1611.05431)"
)


class ResNeXt(ResNet):
    """A ResNet whose bottleneck 3x3 is split into ``spec.cardinality`` groups (Xie et al. §3.3, form (c))."""


def _resnext(depths: tuple[int, ...], cardinality: int, bottleneck_width: int, *, cifar: bool) -> ResNetSpec:
    widths = (64, 128, 256) if cifar else (64, 128, 256, 512)
    return ResNetSpec(
        Bottleneck,
        depths,
        widths,
        "cifar" if cifar else "imagenet",
        stem_channels=64,
        shortcut="B",
        stride_in_1x1=False,
        cardinality=cardinality,
        bottleneck_width=bottleneck_width,
    )


SPECS: dict[str, ResNetSpec] = {
    # §5.1 (CIFAR): 29 layers = 3 stages x 3 bottlenecks x 3 + 2; C x d with d = 64
    "resnext29_8x64d": _resnext((3, 3, 3), 8, 64, cifar=True),
    "resnext29_16x64d": _resnext((3, 3, 3), 16, 64, cifar=True),
    # Table 1 (ResNeXt-50 32x4d) and Table 3/5 (101); 32x8d is torchvision's configuration
    "resnext50_32x4d": _resnext((3, 4, 6, 3), 32, 4, cifar=False),
    "resnext101_32x8d": _resnext((3, 4, 23, 3), 32, 8, cifar=False),
    "resnext101_64x4d": _resnext((3, 4, 23, 3), 64, 4, cifar=False),
}

_README = "facebookresearch/ResNeXt README (single crop 224, top-1 error)"
_TABLE7 = "Xie et al. 2017, Table 7"
_CIFAR_DEVIATION = (
    "post-activation bottlenecks, as the authors' released code; the README says the arXiv CIFAR numbers used "
    "pre-activation bottlenecks and batch 256 and that this form (batch 128) does better",
)


def _table7(c10: float, c100: float) -> tuple[PaperResult, ...]:
    """Xie et al. Table 7 CIFAR test errors (quoted from secondary sources, not yet checked against the table)."""
    return (
        PaperResult("top1_error_pct", c10, "CIFAR-10 test (+aug)", _TABLE7, verified=False),
        PaperResult("top1_error_pct", c100, "CIFAR-100 test (+aug)", _TABLE7, verified=False),
    )


@dataclass(frozen=True)
class _Row:
    params: int  # exact, this build (10 classes on CIFAR, 1000 on ImageNet)
    paper_params: str | None = None  # Table 7 (CIFAR) as printed, not yet checked against the table
    tv_macs: str | None = None  # torchvision weights meta "_ops" (= conv+fc GMACs at 224)
    tv_acc1: float | None = None  # torchvision IMAGENET1K_V1 acc@1 / acc@5, 1 crop 224
    tv_acc5: float | None = None
    results: tuple[PaperResult, ...] = ()


_ROWS: dict[str, _Row] = {
    "resnext29_8x64d": _Row(34_426_698, paper_params="34.4M", results=_table7(3.65, 17.77)),
    "resnext29_16x64d": _Row(68_155_210, paper_params="68.1M", results=_table7(3.58, 17.31)),
    "resnext50_32x4d": _Row(
        25_028_904, tv_macs="4.23G", tv_acc1=77.618, tv_acc5=93.698,
        results=(PaperResult("top1_error_pct", 22.2, "ILSVRC-2012 val, single crop 224", _README),),
    ),
    "resnext101_32x8d": _Row(88_791_336, tv_macs="16.414G", tv_acc1=79.312, tv_acc5=94.526),
    # torchvision ships only IMAGENET1K_V1 trained with its newer recipe (83.246 acc@1): no accuracy here
    "resnext101_64x4d": _Row(
        83_455_272, tv_macs="15.46G",
        results=(PaperResult("top1_error_pct", 20.4, "ILSVRC-2012 val, single crop 224", _README),),
    ),
}

# the fields every CIFAR row shares, and every ImageNet row
_CIFAR_ROW = dict(
    family="resnext",
    paper=PAPER,
    input_size=(3, 32, 32),
    num_classes=10,
    min_size=CIFAR_MIN_SIZE,
    paper_params_source=_TABLE7,
    paper_params_verified=False,
    deviations=_CIFAR_DEVIATION,
    recipe="resnext_cifar",
)
_IMAGENET_ROW = dict(
    family="resnext",
    paper=PAPER,
    input_size=(3, 224, 224),
    num_classes=1000,
    min_size=IMAGENET_MIN_SIZE,
    paper_params_verified=False,
    recipe="resnext_imagenet",
)

for _name, _row in _ROWS.items():
    _spec = SPECS[_name]
    _cifar = _spec.stem == "cifar"
    _weights = f"torchvision ResNeXt{_name[7:].upper()}_Weights.IMAGENET1K_V1 meta"
    _results = _row.results
    if _row.tv_acc1 is not None and _row.tv_acc5 is not None:
        _results += (
            PaperResult("top1_error_pct", round(100 - _row.tv_acc1, 3), "ILSVRC-2012 val, 1 crop 224 (torchvision)",
                        _weights),
            PaperResult("top5_error_pct", round(100 - _row.tv_acc5, 3), "ILSVRC-2012 val, 1 crop 224 (torchvision)",
                        _weights),
        )
    register_model(
        ResNeXt,
        ModelInfo.row(
            _CIFAR_ROW if _cifar else _IMAGENET_ROW,
            name=_name,
            params=_row.params,
            description=f"ResNeXt-{_name[7:].replace('_', ' ')}: grouped-conv bottlenecks, cardinality "
            f"{_spec.cardinality}, group width {_spec.bottleneck_width} at the first stage"
            + (" (CIFAR stem conv3x3 64)" if _cifar else "; loads torchvision state dicts"),
            paper_params=_row.paper_params,
            paper_macs=_row.tv_macs,
            paper_macs_source=f"{_weights} _ops (= conv+fc MACs)" if _row.tv_macs else None,
            results=_results,
            torchvision=None if _cifar else _name,
        ),
        torchvision_key_map=None if _cifar else torchvision_key_map,
        spec=_spec,
    )
