"""Wide ResNet: Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016.

    name                 network                                               params (classes)
    wrn16_8 wrn28_10     WRN-d-k for CIFAR: pre-activation basic units B(3,3),  10,961,370 / 36,479,194 (10)
    wrn40_4 wrn40_10     N = (d-4)/6 per group, widths 16k/32k/64k              8,949,210 / 55,841,754 (10)
    wide_resnet50_2      WRN-50-2-bottleneck: ResNet-50 with the bottleneck     68,883,240 (1000)
    wide_resnet101_2     3x3 twice as wide (torchvision-compatible)             126,886,696 (1000)

WRN-d-k (§2, Table 1): conv3x3 16 -> three groups of N units (stride 2 at the start of groups 3 and 4) -> BN-ReLU ->
global average pool -> fc, built from `cnnzoo.models.preact_resnet.PreActResNet`. As in the authors'
``wide-resnet.lua``: a unit that changes the shape applies its BN-ReLU before the split and projects with a bare 1x1
conv; no conv has a bias.

Dropout: the paper's WRN-d-k has none; "WRN-d-k-dropout" (§2.4) inserts dropout between the two convs of every unit,
after the second BN-ReLU, and its CIFAR results use p = 0.3 (`PAPER_DROPOUT`; the README's ``dropout=0.3``). The
registered names build WRN-d-k (``dropout=0.0``); ``create_model("wrn28_10", dropout=PAPER_DROPOUT)`` builds
WRN-28-10-dropout, the paper's best CIFAR network.

The ImageNet WRN-50-2 is a different network: torchvision's ResNet-50 v1.5 with ``width_per_group=128``
(`cnnzoo.models.resnet.ResNet` with ``bottleneck_width=128``). It loads torchvision state dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..layers.drop_path import DropPathMode
from ..layers.residual import PreActBlock
from ..registry import ModelInfo, PaperResult, register_model
from .preact_resnet import PreActResNet, PreActResNetSpec
from .resnet import SPECS as RESNET_SPECS
from .resnet import CIFAR_MIN_SIZE, IMAGENET_MIN_SIZE, ResNet, torchvision_key_map

PAPER = "Zagoruyko, Komodakis. Wide Residual Networks. BMVC 2016 (arXiv:1605.07146)"
PAPER_DROPOUT = 0.3  # §2.4 / Table 6: WRN-d-k-dropout on CIFAR


@dataclass(frozen=True)
class WideResNetSpec:
    """WRN-d-k (Zagoruyko & Komodakis §2): depth d = 6N + 4 conv layers, width factor k."""

    depth: int
    width_factor: int

    def preact_spec(self) -> PreActResNetSpec:
        if (self.depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6N + 4, got {self.depth}")
        n = (self.depth - 4) // 6
        k = self.width_factor
        return PreActResNetSpec(PreActBlock, (n, n, n), (16 * k, 32 * k, 64 * k), "cifar", stem_channels=16)


class WideResNet(PreActResNet):
    """WRN-d-k: a pre-activation ResNet whose three groups are k times wider (Table 1).

    Args:
        dropout: between the convs of each unit; 0.0 is WRN-d-k, `PAPER_DROPOUT` (0.3) WRN-d-k-dropout.
        drop_path_rate, drop_path_mode: as `cnnzoo.models.resnet.ResNet` (not in the paper; default off).
    """

    def __init__(
        self,
        spec: WideResNetSpec,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        dropout: float = 0.0,
        drop_path_rate: float = 0.0,
        drop_path_mode: DropPathMode = "row",
    ) -> None:
        super().__init__(
            spec.preact_spec(),
            num_classes=num_classes,
            in_channels=in_channels,
            dropout=dropout,
            drop_path_rate=drop_path_rate,
            drop_path_mode=drop_path_mode,
        )
        self.wrn_spec = spec


SPECS: dict[str, WideResNetSpec] = {
    "wrn16_8": WideResNetSpec(16, 8),
    "wrn28_10": WideResNetSpec(28, 10),
    "wrn40_4": WideResNetSpec(40, 4),
    "wrn40_10": WideResNetSpec(40, 10),
}

_README = "szagoruyko/wide-residual-networks README"
_MEDIAN = "test, flip/translation aug, meanstd, median of 5 runs"
_R = "[R: architectures.md §0, not re-verified]"
# name: (exact params at 10 classes, paper params, results)
_CIFAR: dict[str, tuple[int, float | None, tuple[PaperResult, ...]]] = {
    "wrn16_8": (
        10_961_370,
        11.0e6,
        (PaperResult("top1_error_pct", 1.54, "SVHN test, WRN-16-8-dropout, single run", _README),),
    ),
    "wrn28_10": (
        36_479_194,
        36.5e6,
        (
            PaperResult("top1_error_pct", 4.00, f"CIFAR-10 {_MEDIAN}", _README),
            PaperResult("top1_error_pct", 19.25, f"CIFAR-100 {_MEDIAN}", _README),
            PaperResult("top1_error_pct", 3.89, f"CIFAR-10 {_MEDIAN}, dropout 0.3", _README),
            PaperResult("top1_error_pct", 18.85, f"CIFAR-100 {_MEDIAN}, dropout 0.3", _README),
        ),
    ),
    "wrn40_4": (8_949_210, 8.9e6, ()),
    "wrn40_10": (
        55_841_754,
        None,
        (
            PaperResult("top1_error_pct", 3.8, "CIFAR-10 test, meanstd, dropout 0.3, single run", _README),
            PaperResult("top1_error_pct", 18.3, "CIFAR-100 test, meanstd, dropout 0.3, single run", _README),
        ),
    ),
}

for _name, (_params, _paper_params, _results) in _CIFAR.items():
    _wrn = SPECS[_name]
    register_model(
        WideResNet,
        ModelInfo(
            name=_name,
            family="wide_resnet",
            paper=PAPER,
            input_size=(3, 32, 32),
            num_classes=10,
            params=_params,
            description=f"WRN-{_wrn.depth}-{_wrn.width_factor}: pre-activation basic units, "
            f"{(_wrn.depth - 4) // 6} per group, widths {16 * _wrn.width_factor}/{32 * _wrn.width_factor}/"
            f"{64 * _wrn.width_factor}; dropout=0.3 gives the paper's WRN-d-k-dropout",
            min_size=CIFAR_MIN_SIZE,
            paper_params=_paper_params,
            paper_params_source=f"Zagoruyko & Komodakis 2016, Tables 4/5 {_R}" if _paper_params else None,
            results=_results,
            recipe="wrn_cifar",
            slow=_params > 20_000_000,
            tags=("cifar",),
        ),
        spec=_wrn,
    )

# depth: (exact params at 1000 classes, torchvision _ops, torchvision IMAGENET1K_V1 acc@1 / acc@5)
_IMAGENET: dict[int, tuple[int, float, tuple[float, float]]] = {
    50: (68_883_240, 11.398e9, (78.468, 94.086)),
    101: (126_886_696, 22.753e9, (78.848, 94.284)),
}
for _depth, (_params, _ops, (_acc1, _acc5)) in _IMAGENET.items():
    _name = f"wide_resnet{_depth}_2"
    _weights = f"torchvision Wide_ResNet{_depth}_2_Weights.IMAGENET1K_V1 meta"
    _results = (
        PaperResult("top1_error_pct", round(100 - _acc1, 3), "ILSVRC-2012 val, 1 crop 224 (torchvision)", _weights),
        PaperResult("top5_error_pct", round(100 - _acc5, 3), "ILSVRC-2012 val, 1 crop 224 (torchvision)", _weights),
    )
    if _depth == 50:
        _results += (
            PaperResult("top1_error_pct", 21.9, "ILSVRC-2012 val, single crop, WRN-50-2-bottleneck", _README),
            PaperResult("top5_error_pct", 5.79, "ILSVRC-2012 val, single crop, WRN-50-2-bottleneck", _README),
        )
    register_model(
        ResNet,
        ModelInfo(
            name=_name,
            family="wide_resnet",
            paper=PAPER,
            input_size=(3, 224, 224),
            num_classes=1000,
            params=_params,
            description=f"WRN-{_depth}-2-bottleneck: ResNet-{_depth} with the bottleneck 3x3 twice as wide (128 at "
            "the first stage), stride in the 3x3, as the authors' pretrained/wide-resnet.lua and torchvision; "
            "loads torchvision state dicts",
            min_size=IMAGENET_MIN_SIZE,
            paper_params=68.9e6 if _depth == 50 else None,
            paper_params_source=f"{_README} (WRN-50-2-bottleneck)" if _depth == 50 else None,
            paper_macs=_ops,
            paper_macs_source=f"{_weights} _ops (= conv+fc MACs)",
            results=_results,
            torchvision=_name,
            recipe="resnet_imagenet",
            slow=True,
            tags=("imagenet", "torchvision-compatible"),
        ),
        torchvision_key_map=torchvision_key_map,
        spec=replace(RESNET_SPECS[f"resnet{_depth}_tv"], bottleneck_width=128),
    )
