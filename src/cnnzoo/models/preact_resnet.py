"""Pre-activation ResNet: He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016.

    name                  unit (Fig. 4e)          layout                                  params (classes)
    preact_resnet18..152  basic / bottleneck      ImageNet, He et al. 2016a Table 1       11,687,720 .. 60,185,128
    preact_resnet110      basic, option A         CIFAR 6n+2, n=18, widths 16/32/64       1,727,962 (10)
    preact_resnet164      bottleneck, 1x1 proj.   CIFAR 9n+2, n=18, outputs 64/128/256    1,703,258 (10)
    preact_resnet1001     bottleneck, 1x1 proj.   CIFAR 9n+2, n=111                       10,327,706 (10)

preact_resnet50 has 25,549,352 parameters, as timm's ``resnetv2_50``, which reaches the same count with the stem's
BN moved into the first unit. The network is `cnnzoo.models.resnet.ResNet` with pre-activation units in its spec.

A unit is x_{l+1} = x_l + F(x_l), F = BN-ReLU-conv(-BN-ReLU-conv)...: nothing follows the addition. The first unit of
every stage applies its BN-ReLU before the split, so its shortcut sees the activated input ("when pre-activation is
used, these projection shortcuts are also with pre-activation", appendix; ``common BN, ReLU`` in the official
KaimingHe/resnet-1k-layers code). An extra BN-ReLU follows the last unit, before global average pooling.

Stems: CIFAR, a bare 3x3 conv (resnet-1k-layers); ImageNet, conv7x7-BN-ReLU-maxpool ("the first activation right
after conv1", appendix), so the first ImageNet unit has no BN-ReLU of its own (fb.resnet.torch ``preresnet.lua``).
Projection shortcuts are a bare 1x1 conv (resnet-1k-layers). Bottlenecks stride their first 1x1, as resnet-1k-layers
and He et al. 2016a do (fb.resnet.torch's ``preresnet.lua`` strides the 3x3). He init (`init_he_`), fan-out, as
the official code (``v.kW*v.kH*v.nOutputPlane``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..layers.residual import PreActBlock, PreActBottleneck
from ..registry import ModelInfo, PaperResult, register_model
from .resnet import CIFAR_MIN_SIZE, CIFAR_WIDTHS, IMAGENET_MIN_SIZE, IMAGENET_WIDTHS, ResNet, ResNetSpec

PAPER = "He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. ECCV 2016 (arXiv:1603.05027)"

SPECS: dict[str, ResNetSpec] = {
    # He et al. 2016a Table 1 block counts with the pre-activation unit; projection shortcuts where the shape changes
    "preact_resnet18": ResNetSpec(PreActBlock, (2, 2, 2, 2), IMAGENET_WIDTHS, "imagenet"),
    "preact_resnet34": ResNetSpec(PreActBlock, (3, 4, 6, 3), IMAGENET_WIDTHS, "imagenet"),
    "preact_resnet50": ResNetSpec(PreActBottleneck, (3, 4, 6, 3), IMAGENET_WIDTHS, "imagenet"),
    "preact_resnet101": ResNetSpec(PreActBottleneck, (3, 4, 23, 3), IMAGENET_WIDTHS, "imagenet"),
    "preact_resnet152": ResNetSpec(PreActBottleneck, (3, 8, 36, 3), IMAGENET_WIDTHS, "imagenet"),
    # §4 / Table 2: the CIFAR ResNet-110 of He et al. 2016a §4.2 (option A) with pre-activation units
    "preact_resnet110": ResNetSpec(PreActBlock, (18, 18, 18), CIFAR_WIDTHS, "cifar", 16, shortcut="A"),
    # §4 / Table 3 and resnet-1k-layers: bottleneck units, 9n+2 layers, outputs 64/128/256 (nStages = 16,64,128,256)
    "preact_resnet164": ResNetSpec(PreActBottleneck, (18, 18, 18), CIFAR_WIDTHS, "cifar", 16),
    "preact_resnet1001": ResNetSpec(PreActBottleneck, (111, 111, 111), CIFAR_WIDTHS, "cifar", 16),
}


@dataclass(frozen=True)
class _Row:
    params: int  # exact, this build (10 classes on CIFAR, 1000 on ImageNet)
    description: str
    paper_params: str | None = None  # He et al. 2016b, Table 3, as printed
    comparable_params: int | None = None  # the part of this build Table 3's figure counts
    comparable_params_note: str | None = None
    results: tuple[PaperResult, ...] = ()
    deviations: tuple[str, ...] = ()


_TABLE3 = "He et al. 2016b, Table 3"
_WRN_README = "szagoruyko/wide-residual-networks README (pre-ResNet rows; the paper's Table 3 numbers)"
_IMAGENET = (
    "ImageNet layout not released by the authors (the paper reports ResNet-152/200): built from He et al. 2016a "
    "Table 1 with the paper's unit and appendix rules; fb.resnet.torch's preresnet.lua differs (BN on projections, "
    "stride in the 3x3)",
)
_ROWS: dict[str, _Row] = {
    "preact_resnet18": _Row(11_687_720, "ImageNet pre-activation ResNet-18 (basic units)", deviations=_IMAGENET),
    "preact_resnet34": _Row(21_795_880, "ImageNet pre-activation ResNet-34 (basic units)", deviations=_IMAGENET),
    "preact_resnet50": _Row(25_549_352, "ImageNet pre-activation ResNet-50", deviations=_IMAGENET),
    "preact_resnet101": _Row(44_541_480, "ImageNet pre-activation ResNet-101", deviations=_IMAGENET),
    "preact_resnet152": _Row(60_185_128, "ImageNet pre-activation ResNet-152", deviations=_IMAGENET),
    "preact_resnet110": _Row(
        1_727_962,
        "CIFAR pre-activation ResNet-110: basic units, widths 16/32/64, zero-padded identity shortcuts (option A)",
        deviations=(
            "option A shortcuts: the CIFAR ResNet-110 of He et al. 2016a that the paper modifies (its shortcut for "
            "increasing dimensions is not restated); fb.resnet.torch's CIFAR default is A as well",
        ),
    ),
    "preact_resnet164": _Row(
        1_703_258,
        "CIFAR pre-activation ResNet-164: 18 bottleneck units per stage, outputs 64/128/256, 1x1 projections",
        paper_params="1.7M",
        results=(
            PaperResult("top1_error_pct", 5.46, "CIFAR-10 test (+aug)", _WRN_README),
            PaperResult("top1_error_pct", 24.33, "CIFAR-100 test (+aug)", _WRN_README),
        ),
    ),
    "preact_resnet1001": _Row(
        10_327_706,
        "CIFAR pre-activation ResNet-1001: 111 bottleneck units per stage, outputs 64/128/256, 1x1 projections",
        paper_params="10.2M",
        comparable_params=10_178_490,
        comparable_params_note="conv and fc layers only, no batch-norm parameters: what Table 3's 10.2M counts",
        results=(
            PaperResult("top1_error_pct", 4.92, "CIFAR-10 test (+aug), batch 128", _WRN_README),
            PaperResult("top1_error_pct", 22.71, "CIFAR-100 test (+aug)", _WRN_README),
            PaperResult(
                "top1_error_pct", 4.62, "CIFAR-10 test (+aug), batch 64", "KaimingHe/resnet-1k-layers README"
            ),
        ),
    ),
}

# the fields every CIFAR row shares, and every ImageNet row
_CIFAR_ROW = dict(
    family="preact_resnet",
    paper=PAPER,
    input_size=(3, 32, 32),
    num_classes=10,
    min_size=CIFAR_MIN_SIZE,
    recipe="preact_cifar",
)
_IMAGENET_ROW = dict(
    family="preact_resnet",
    paper=PAPER,
    input_size=(3, 224, 224),
    num_classes=1000,
    min_size=IMAGENET_MIN_SIZE,
    recipe="resnet_imagenet",
)

for _name, _row in _ROWS.items():
    _spec = SPECS[_name]
    register_model(
        ResNet,
        ModelInfo.row(
            _CIFAR_ROW if _spec.stem == "cifar" else _IMAGENET_ROW,
            name=_name,
            params=_row.params,
            description=_row.description,
            paper_params=_row.paper_params,
            paper_params_source=_TABLE3 if _row.paper_params else None,
            comparable_params=_row.comparable_params,
            comparable_params_note=_row.comparable_params_note,
            results=_row.results,
            deviations=_row.deviations,
        ),
        spec=_spec,
    )
