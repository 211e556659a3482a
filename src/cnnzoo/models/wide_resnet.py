"""Wide ResNet: Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016.

    name                 network                                               params (classes)
    wrn16_8 wrn28_10     WRN-d-k for CIFAR: pre-activation basic units B(3,3),  10,961,370 / 36,479,194 (10)
    wrn40_4 wrn40_10     N = (d-4)/6 per group, widths 16k/32k/64k              8,949,210 / 55,841,754 (10)
    wide_resnet50_2      WRN-50-2-bottleneck: ResNet-50 with the bottleneck     68,883,240 (1000)
    wide_resnet101_2     3x3 twice as wide (torchvision-compatible)             126,886,696 (1000)

WRN-d-k (§2, Table 1): conv3x3 16 -> three groups of N units (stride 2 at the start of groups 3 and 4) -> BN-ReLU ->
global average pool -> fc: `cnnzoo.models.resnet.ResNet` with pre-activation basic units (`wrn_spec`). As in the
authors' ``wide-resnet.lua``: a unit that changes the shape applies its BN-ReLU before the split and projects with a
bare 1x1 conv; no conv has a bias.

Dropout: the paper's WRN-d-k has none; "WRN-d-k-dropout" (§2.4) inserts dropout between the two convs of every unit,
after the second BN-ReLU, and its CIFAR results use p = 0.3 (`PAPER_DROPOUT`; the README's ``dropout=0.3``). The
registered names build WRN-d-k (``dropout=0.0``); ``create_model("wrn28_10", dropout=PAPER_DROPOUT)`` builds
WRN-28-10-dropout, the paper's best CIFAR network.

The ImageNet WRN-50-2 is a different network: torchvision's ResNet-50 v1.5 with ``width_per_group=128``
(`cnnzoo.models.resnet.ResNet` with ``bottleneck_width=128``). It loads torchvision state dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..layers.residual import PreActBlock
from ..registry import ModelInfo, PaperResult, register_model
from .resnet import SPECS as RESNET_SPECS
from .resnet import CIFAR_MIN_SIZE, IMAGENET_MIN_SIZE, ResNet, ResNetSpec, torchvision_key_map

PAPER = "Zagoruyko, Komodakis. Wide Residual Networks. BMVC 2016 (arXiv:1605.07146)"
PAPER_DROPOUT = 0.3  # §2.4 / Table 6: WRN-d-k-dropout on CIFAR


def wrn_spec(depth: int, width_factor: int) -> ResNetSpec:
    """WRN-d-k (Zagoruyko & Komodakis §2, Table 1): depth d = 6N + 4 conv layers, N pre-activation basic units per
    group, widths 16k/32k/64k."""
    if (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6N + 4, got {depth}")
    n = (depth - 4) // 6
    k = width_factor
    return ResNetSpec(PreActBlock, (n, n, n), (16 * k, 32 * k, 64 * k), "cifar", stem_channels=16)


@dataclass(frozen=True)
class _CifarRow:
    depth: int
    width_factor: int
    params: int  # exact, this build at 10 classes
    paper_params: str | None  # Zagoruyko & Komodakis Tables 4/5, as printed
    results: tuple[PaperResult, ...] = ()


@dataclass(frozen=True)
class _ImageNetRow:
    params: int  # exact, this build at 1000 classes
    tv_macs: str  # torchvision weights meta "_ops" (GMACs)
    tv_acc1: float  # torchvision IMAGENET1K_V1 acc@1 / acc@5
    tv_acc5: float
    paper_params: str | None = None  # as printed
    results: tuple[PaperResult, ...] = ()


_README = "szagoruyko/wide-residual-networks README"
_MEDIAN = "test, flip/translation aug, meanstd, median of 5 runs"
_TABLES = "Zagoruyko & Komodakis 2016, Tables 4/5"
_CIFAR: dict[str, _CifarRow] = {
    "wrn16_8": _CifarRow(
        16, 8, 10_961_370, paper_params="11.0M",
        results=(PaperResult("top1_error_pct", 1.54, "SVHN test, WRN-16-8-dropout, single run", _README),),
    ),
    "wrn28_10": _CifarRow(
        28, 10, 36_479_194, paper_params="36.5M",
        results=(
            PaperResult("top1_error_pct", 4.00, f"CIFAR-10 {_MEDIAN}", _README),
            PaperResult("top1_error_pct", 19.25, f"CIFAR-100 {_MEDIAN}", _README),
            PaperResult("top1_error_pct", 3.89, f"CIFAR-10 {_MEDIAN}, dropout 0.3", _README),
            PaperResult("top1_error_pct", 18.85, f"CIFAR-100 {_MEDIAN}, dropout 0.3", _README),
        ),
    ),
    "wrn40_4": _CifarRow(40, 4, 8_949_210, paper_params="8.9M"),
    "wrn40_10": _CifarRow(
        40, 10, 55_841_754, paper_params=None,
        results=(
            PaperResult("top1_error_pct", 3.8, "CIFAR-10 test, meanstd, dropout 0.3, single run", _README),
            PaperResult("top1_error_pct", 18.3, "CIFAR-100 test, meanstd, dropout 0.3, single run", _README),
        ),
    ),
}
_WRN50_README = "ILSVRC-2012 val, single crop, WRN-50-2-bottleneck"
_IMAGENET: dict[int, _ImageNetRow] = {
    50: _ImageNetRow(
        68_883_240, tv_macs="11.398G", tv_acc1=78.468, tv_acc5=94.086, paper_params="68.9M",
        results=(
            PaperResult("top1_error_pct", 21.9, _WRN50_README, _README),
            PaperResult("top5_error_pct", 5.79, _WRN50_README, _README),
        ),
    ),
    101: _ImageNetRow(126_886_696, tv_macs="22.753G", tv_acc1=78.848, tv_acc5=94.284),
}
SPECS: dict[str, ResNetSpec] = {name: wrn_spec(row.depth, row.width_factor) for name, row in _CIFAR.items()}

# the fields every CIFAR row shares, and every ImageNet row
_CIFAR_ROW = dict(
    family="wide_resnet",
    paper=PAPER,
    input_size=(3, 32, 32),
    num_classes=10,
    min_size=CIFAR_MIN_SIZE,
    paper_params_verified=False,
    recipe="wrn_cifar",
)
_IMAGENET_ROW = dict(
    family="wide_resnet",
    paper=PAPER,
    input_size=(3, 224, 224),
    num_classes=1000,
    min_size=IMAGENET_MIN_SIZE,
    recipe="resnet_imagenet",
)

for _name, _row in _CIFAR.items():
    _k = _row.width_factor
    register_model(
        ResNet,
        ModelInfo.row(
            _CIFAR_ROW,
            name=_name,
            params=_row.params,
            description=f"WRN-{_row.depth}-{_k}: pre-activation basic units, {(_row.depth - 4) // 6} per group, "
            f"widths {16 * _k}/{32 * _k}/{64 * _k}; dropout=0.3 gives the paper's WRN-d-k-dropout",
            paper_params=_row.paper_params,
            paper_params_source=_TABLES if _row.paper_params else None,
            results=_row.results,
        ),
        spec=SPECS[_name],
    )

for _depth, _row in _IMAGENET.items():
    _name = f"wide_resnet{_depth}_2"
    _weights = f"torchvision Wide_ResNet{_depth}_2_Weights.IMAGENET1K_V1 meta"
    _tv_data = "ILSVRC-2012 val, 1 crop 224 (torchvision)"
    register_model(
        ResNet,
        ModelInfo.row(
            _IMAGENET_ROW,
            name=_name,
            params=_row.params,
            description=f"WRN-{_depth}-2-bottleneck: ResNet-{_depth} with the bottleneck 3x3 twice as wide (128 at "
            "the first stage), stride in the 3x3, as the authors' pretrained/wide-resnet.lua and torchvision; "
            "loads torchvision state dicts",
            paper_params=_row.paper_params,
            paper_params_source=f"{_README} (WRN-50-2-bottleneck)" if _row.paper_params else None,
            paper_macs=_row.tv_macs,
            paper_macs_source=f"{_weights} _ops (= conv+fc MACs)",
            results=(
                PaperResult("top1_error_pct", round(100 - _row.tv_acc1, 3), _tv_data, _weights),
                PaperResult("top5_error_pct", round(100 - _row.tv_acc5, 3), _tv_data, _weights),
            )
            + _row.results,
            torchvision=_name,
        ),
        torchvision_key_map=torchvision_key_map,
        spec=replace(RESNET_SPECS[f"resnet{_depth}_tv"], bottleneck_width=128),
    )
