"""Pre-activation ResNet: He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016.

    name                  unit (Fig. 4e)          layout                                  params (classes)
    preact_resnet18..152  basic / bottleneck      ImageNet, He et al. 2016a Table 1       11,687,720 .. 60,185,128
    preact_resnet110      basic, option A         CIFAR 6n+2, n=18, widths 16/32/64       1,727,962 (10)
    preact_resnet164      bottleneck, 1x1 proj.   CIFAR 9n+2, n=18, outputs 64/128/256    1,703,258 (10)
    preact_resnet1001     bottleneck, 1x1 proj.   CIFAR 9n+2, n=111                       10,327,706 (10)

preact_resnet50 has 25,549,352 parameters, as timm's ``resnetv2_50`` (architectures.md §1.6), which reaches the
same count with the stem's BN moved into the first unit.

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

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..layers.drop_path import DropPathMode, drop_path_modules
from ..layers.residual import (
    PreActBlock,
    PreActBottleneck,
    ShortcutType,
    init_he_,
    make_head,
    make_stage,
    make_stem,
)
from ..registry import ModelInfo, PaperResult, register_model
from .resnet import CIFAR_MIN_SIZE, IMAGENET_MIN_SIZE

PAPER = "He, Zhang, Ren, Sun. Identity Mappings in Deep Residual Networks. ECCV 2016 (arXiv:1603.05027)"


@dataclass(frozen=True)
class PreActResNetSpec:
    block: type[PreActBlock] | type[PreActBottleneck]
    depths: tuple[int, ...]  # units per stage
    widths: tuple[int, ...]  # per stage, before the bottleneck's x4 expansion
    stem: Literal["imagenet", "cifar"]
    stem_channels: int = 64
    shortcut: ShortcutType = "B"


class PreActResNet(nn.Module):
    """stem -> stages of pre-activation units -> BN-ReLU -> global average pool -> fc.

    Args:
        dropout: Zagoruyko & Komodakis' dropout between the two convs of a basic unit (Wide ResNet); 0 here.
        drop_path_rate, drop_path_mode: as `cnnzoo.models.resnet.ResNet` (``drop_path_rate`` = 1 - p_L).
    """

    def __init__(
        self,
        spec: PreActResNetSpec,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.0,
        drop_path_rate: float = 0.0,
        drop_path_mode: DropPathMode = "row",
    ) -> None:
        super().__init__()
        self.spec = spec
        block_kwargs: dict[str, Any] = {"shortcut": spec.shortcut}
        if dropout > 0:
            if spec.block is not PreActBlock:
                raise ValueError("dropout between the convs is defined for basic (3x3, 3x3) units only")
            block_kwargs["dropout"] = dropout
        self.stem = make_stem(spec.stem, in_channels, spec.stem_channels, norm=False)
        drop_paths = iter(drop_path_modules(drop_path_rate, sum(spec.depths), mode=drop_path_mode))
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        channels = spec.stem_channels
        for index, (depth, width) in enumerate(zip(spec.depths, spec.widths, strict=True), start=1):
            out_channels = width * spec.block.expansion
            # the ImageNet stem ends in BN-ReLU, which is the first unit's pre-activation; every other stage's first
            # unit activates before the split
            first_preact = "none" if index == 1 and spec.stem == "imagenet" else "shared"
            stages[f"stage{index}"] = make_stage(
                spec.block,
                channels,
                out_channels,
                depth,
                stride=1 if index == 1 else 2,
                drop_paths=[next(drop_paths) for _ in range(depth)],
                first_block={"preact": first_preact},
                **block_kwargs,
            )
            channels = out_channels
        self.stages = nn.Sequential(stages)
        self.head = make_head(channels, num_classes, preact=True)
        init_he_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stages(x)
        return self.head(x)


_IMAGENET_WIDTHS = (64, 128, 256, 512)
_CIFAR_WIDTHS = (16, 32, 64)

SPECS: dict[str, PreActResNetSpec] = {
    # He et al. 2016a Table 1 block counts with the pre-activation unit; projection shortcuts where the shape changes
    "preact_resnet18": PreActResNetSpec(PreActBlock, (2, 2, 2, 2), _IMAGENET_WIDTHS, "imagenet"),
    "preact_resnet34": PreActResNetSpec(PreActBlock, (3, 4, 6, 3), _IMAGENET_WIDTHS, "imagenet"),
    "preact_resnet50": PreActResNetSpec(PreActBottleneck, (3, 4, 6, 3), _IMAGENET_WIDTHS, "imagenet"),
    "preact_resnet101": PreActResNetSpec(PreActBottleneck, (3, 4, 23, 3), _IMAGENET_WIDTHS, "imagenet"),
    "preact_resnet152": PreActResNetSpec(PreActBottleneck, (3, 8, 36, 3), _IMAGENET_WIDTHS, "imagenet"),
    # §4 / Table 2: the CIFAR ResNet-110 of He et al. 2016a §4.2 (option A) with pre-activation units
    "preact_resnet110": PreActResNetSpec(PreActBlock, (18, 18, 18), _CIFAR_WIDTHS, "cifar", 16, shortcut="A"),
    # §4 / Table 3 and resnet-1k-layers: bottleneck units, 9n+2 layers, outputs 64/128/256 (nStages = 16,64,128,256)
    "preact_resnet164": PreActResNetSpec(PreActBottleneck, (18, 18, 18), _CIFAR_WIDTHS, "cifar", 16),
    "preact_resnet1001": PreActResNetSpec(PreActBottleneck, (111, 111, 111), _CIFAR_WIDTHS, "cifar", 16),
}

_WRN_README = "szagoruyko/wide-residual-networks README (pre-ResNet rows; the paper's Table 3 numbers)"
_IMAGENET_DEVIATION = (
    "ImageNet layout not released by the authors (the paper reports ResNet-152/200): built from He et al. 2016a "
    "Table 1 with the paper's unit and appendix rules; fb.resnet.torch's preresnet.lua differs (BN on projections, "
    "stride in the 3x3)",
)
# name: (exact params, description, results, deviations, slow)
_VARIANTS: dict[str, tuple[int, str, tuple[PaperResult, ...], tuple[str, ...], bool]] = {
    "preact_resnet18": (11_687_720, "ImageNet pre-activation ResNet-18 (basic units)", (), _IMAGENET_DEVIATION, False),
    "preact_resnet34": (21_795_880, "ImageNet pre-activation ResNet-34 (basic units)", (), _IMAGENET_DEVIATION, False),
    "preact_resnet50": (25_549_352, "ImageNet pre-activation ResNet-50", (), _IMAGENET_DEVIATION, False),
    "preact_resnet101": (44_541_480, "ImageNet pre-activation ResNet-101", (), _IMAGENET_DEVIATION, True),
    "preact_resnet152": (60_185_128, "ImageNet pre-activation ResNet-152", (), _IMAGENET_DEVIATION, True),
    "preact_resnet110": (
        1_727_962,
        "CIFAR pre-activation ResNet-110: basic units, widths 16/32/64, zero-padded identity shortcuts (option A)",
        (),
        (
            "option A shortcuts: the CIFAR ResNet-110 of He et al. 2016a that the paper modifies (its shortcut for "
            "increasing dimensions is not restated); fb.resnet.torch's CIFAR default is A as well",
        ),
        False,
    ),
    "preact_resnet164": (
        1_703_258,
        "CIFAR pre-activation ResNet-164: 18 bottleneck units per stage, outputs 64/128/256, 1x1 projections",
        (
            PaperResult("top1_error_pct", 5.46, "CIFAR-10 test (+aug)", _WRN_README),
            PaperResult("top1_error_pct", 24.33, "CIFAR-100 test (+aug)", _WRN_README),
        ),
        (),
        False,
    ),
    "preact_resnet1001": (
        10_327_706,
        "CIFAR pre-activation ResNet-1001: 111 bottleneck units per stage, outputs 64/128/256, 1x1 projections",
        (
            PaperResult("top1_error_pct", 4.92, "CIFAR-10 test (+aug), batch 128", _WRN_README),
            PaperResult("top1_error_pct", 22.71, "CIFAR-100 test (+aug)", _WRN_README),
            PaperResult(
                "top1_error_pct", 4.62, "CIFAR-10 test (+aug), batch 64", "KaimingHe/resnet-1k-layers README"
            ),
        ),
        (),
        True,
    ),
}
_PAPER_PARAMS = {"preact_resnet164": 1.7e6, "preact_resnet1001": 10.2e6}
_PAPER_PARAMS_SOURCE = "He et al. 2016b, Table 3 [R: architectures.md §0]"

for _name, (_params, _description, _results, _deviations, _slow) in _VARIANTS.items():
    _spec = SPECS[_name]
    _cifar = _spec.stem == "cifar"
    register_model(
        PreActResNet,
        ModelInfo(
            name=_name,
            family="preact_resnet",
            paper=PAPER,
            input_size=(3, 32, 32) if _cifar else (3, 224, 224),
            num_classes=10 if _cifar else 1000,
            params=_params,
            description=_description,
            min_size=CIFAR_MIN_SIZE if _cifar else IMAGENET_MIN_SIZE,
            paper_params=_PAPER_PARAMS.get(_name),
            paper_params_source=_PAPER_PARAMS_SOURCE if _name in _PAPER_PARAMS else None,
            results=_results,
            deviations=_deviations,
            recipe="preact_cifar" if _cifar else "resnet_imagenet",
            slow=_slow,
            tags=("cifar",) if _cifar else ("imagenet",),
        ),
        spec=_spec,
    )
