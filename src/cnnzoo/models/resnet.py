"""ResNet: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

    name                 layout (paper)                         shortcut        params (classes)
    resnet18 .. 152      Table 1, ImageNet, stride in 1x1 (v1)  B (projection)  11,689,512 .. 60,192,808 (1000)
    resnet18_tv .. _tv   the same, stride in 3x3 (v1.5)         B               torchvision's; loads its weights
    resnet20 .. 1202     §4.2, CIFAR, 6n+2 layers, 16/32/64     A (zero pad)    269,722 .. 19,421,274 (10)

v1 vs v1.5: He et al. (and their Caffe models) stride the first 1x1 of a downsampling bottleneck; fb.resnet.torch and
torchvision stride the 3x3 ("ResNet V1.5", torchvision's docstring). Same parameters, more multiply-adds (ResNet-50:
3.858 vs 4.089 G) and a different function, hence two names. Basic-block nets (18, 34) have no 1x1, so resnet18 and
resnet18_tv are the same network.

Init: He et al. §3.4 "initialize the weights as in [He et al. 2015]": `init_he_` (fan-out normal, as fb.resnet.torch
and torchvision). Every model also takes ``drop_path_rate`` and ``drop_path_mode`` (see `cnnzoo.layers.drop_path`;
``drop_path_rate`` is 1 - p_L, the drop probability of the last block); the default 0 is the paper's network.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from ..layers.drop_path import DropPathMode, drop_path_modules
from ..layers.residual import BasicBlock, Bottleneck, ShortcutType, init_he_, make_head, make_stage, make_stem
from ..registry import ModelInfo, PaperResult, register_model

PAPER = "He, Zhang, Ren, Sun. Deep Residual Learning for Image Recognition. CVPR 2016 (arXiv:1512.03385)"


@dataclass(frozen=True)
class ResNetSpec:
    """One network of the residual family (post-activation units)."""

    block: type[BasicBlock] | type[Bottleneck]
    depths: tuple[int, ...]  # residual blocks per stage
    widths: tuple[int, ...]  # per stage, before the bottleneck's x4 expansion (He et al. Table 1)
    stem: Literal["imagenet", "cifar"]
    stem_channels: int = 64
    shortcut: ShortcutType = "B"  # §3.3: A zero-padded identity, B projection where the shape changes
    stride_in_1x1: bool = True  # bottleneck only: v1 (paper) True, v1.5 (torchvision) False
    cardinality: int = 1  # bottleneck only: Xie et al. 2017's groups of the 3x3
    bottleneck_width: int = 64  # bottleneck only: Xie et al.'s d at the first stage (64 = ResNet)


class ResNet(nn.Module):
    """stem -> stages (stride 2 at the first block of every stage but the first) -> global average pool -> fc.

    Args:
        drop_path_rate: drop probability of the last residual block (= 1 - p_L of Huang et al. 2016); 0 (default)
            is the paper's network.
        drop_path_mode: ``"row"`` per-sample drop path with timm's linear ramp from 0 (default), or ``"batch"``,
            Huang et al.'s whole-batch drop with p_l = 1 - l/L (1 - p_L) and test-time scaling by p_l.
    """

    def __init__(
        self,
        spec: ResNetSpec,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        drop_path_rate: float = 0.0,
        drop_path_mode: DropPathMode = "row",
    ) -> None:
        super().__init__()
        self.spec = spec
        block_kwargs: dict[str, Any] = {"shortcut": spec.shortcut}
        if spec.block is Bottleneck:
            block_kwargs.update(
                stride_in_1x1=spec.stride_in_1x1,
                cardinality=spec.cardinality,
                bottleneck_width=spec.bottleneck_width,
            )
        self.stem = make_stem(spec.stem, in_channels, spec.stem_channels)
        drop_paths = iter(drop_path_modules(drop_path_rate, sum(spec.depths), mode=drop_path_mode))
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        channels = spec.stem_channels
        for index, (depth, width) in enumerate(zip(spec.depths, spec.widths, strict=True), start=1):
            out_channels = width * spec.block.expansion
            stages[f"stage{index}"] = make_stage(
                spec.block,
                channels,
                out_channels,
                depth,
                stride=1 if index == 1 else 2,
                drop_paths=[next(drop_paths) for _ in range(depth)],
                **block_kwargs,
            )
            channels = out_channels
        self.stages = nn.Sequential(stages)
        self.head = make_head(channels, num_classes)
        init_he_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.stages(x)
        return self.head(x)


_TORCHVISION_RENAMES = (
    (re.compile(r"^conv1\."), "stem.conv."),
    (re.compile(r"^bn1\."), "stem.bn."),
    (re.compile(r"^layer(\d+)\."), r"stages.stage\1."),
    (re.compile(r"\.downsample\."), ".shortcut."),
    (re.compile(r"^fc\."), "head.fc."),
)


def torchvision_key_map(state: dict[str, Any]) -> dict[str, Any]:
    """torchvision ResNet/ResNeXt/Wide-ResNet keys -> ours: conv1/bn1 -> stem, layerN -> stages.stageN,
    downsample -> shortcut, fc -> head.fc; the block-internal names (conv1, bn1, ...) are already the same."""
    mapped = {}
    for key, value in state.items():
        for pattern, replacement in _TORCHVISION_RENAMES:
            key = pattern.sub(replacement, key)
        mapped[key] = value
    return mapped


_IMAGENET_WIDTHS = (64, 128, 256, 512)
_CIFAR_WIDTHS = (16, 32, 64)
# Smallest inputs (the tests run there). The nets end in adaptive average pooling, so any size runs, but the last
# stage must keep a 2x2 map: at 1x1, batch norm over a batch of 2 sees two values per channel, outputs +-1 and
# back-propagates exploding gradients. ImageNet nets downsample by 32, CIFAR nets by 4.
IMAGENET_MIN_SIZE = 64
CIFAR_MIN_SIZE = 8

SPECS: dict[str, ResNetSpec] = {
    # He et al. Table 1: conv2_x .. conv5_x block counts; option B (§3.3; §4.1 uses B for 50/101/152; Table 3 gives
    # ResNet-34 B)
    "resnet18": ResNetSpec(BasicBlock, (2, 2, 2, 2), _IMAGENET_WIDTHS, "imagenet"),
    "resnet34": ResNetSpec(BasicBlock, (3, 4, 6, 3), _IMAGENET_WIDTHS, "imagenet"),
    "resnet50": ResNetSpec(Bottleneck, (3, 4, 6, 3), _IMAGENET_WIDTHS, "imagenet"),
    "resnet101": ResNetSpec(Bottleneck, (3, 4, 23, 3), _IMAGENET_WIDTHS, "imagenet"),
    "resnet152": ResNetSpec(Bottleneck, (3, 8, 36, 3), _IMAGENET_WIDTHS, "imagenet"),
    # He et al. §4.2: 3x3 conv 16, then 3 stages of n basic blocks on 32/16/8 maps, widths 16/32/64, option A;
    # depth 6n + 2 with n = 3, 5, 7, 9, 18, 200
    **{
        f"resnet{6 * n + 2}": ResNetSpec(BasicBlock, (n, n, n), _CIFAR_WIDTHS, "cifar", stem_channels=16, shortcut="A")
        for n in (3, 5, 7, 9, 18, 200)
    },
}
for _depth in (18, 34, 50, 101, 152):  # torchvision's v1.5: stride on the 3x3 of the downsampling bottleneck
    SPECS[f"resnet{_depth}_tv"] = replace(SPECS[f"resnet{_depth}"], stride_in_1x1=False)


def _top_errors(top1: float, top5: float, dataset: str, source: str) -> tuple[PaperResult, ...]:
    return (PaperResult("top1_error_pct", top1, dataset, source), PaperResult("top5_error_pct", top5, dataset, source))


_README = "KaimingHe/deep-residual-networks README (10-crop: 'the same as those in the paper')"
_README_1CROP = "KaimingHe/deep-residual-networks README (the released Caffe models)"
_TEN_CROP = "ILSVRC-2012 val, 10-crop, short side 256"
_ONE_CROP = "ILSVRC-2012 val, 1 crop 224, short side 256"
_IMAGENET_RESULTS: dict[int, tuple[PaperResult, ...]] = {
    50: _top_errors(22.9, 6.7, _TEN_CROP, _README) + _top_errors(24.7, 7.8, _ONE_CROP, _README_1CROP),
    101: _top_errors(21.8, 6.1, _TEN_CROP, _README) + _top_errors(23.6, 7.1, _ONE_CROP, _README_1CROP),
    152: _top_errors(21.4, 5.7, _TEN_CROP, _README) + _top_errors(23.0, 6.7, _ONE_CROP, _README_1CROP),
}
# depth: (exact params at 1000 classes, v1 MACs at 224 computed from this build, torchvision _ops, paper Table 1
# FLOPs (multiply-adds), torchvision IMAGENET1K_V1 acc@1 / acc@5)
_IMAGENET: dict[int, tuple[int, int, float, float, tuple[float, float]]] = {
    18: (11_689_512, 1_814_073_344, 1.814e9, 1.8e9, (69.758, 89.078)),
    34: (21_797_672, 3_663_761_408, 3.664e9, 3.6e9, (73.314, 91.42)),
    50: (25_557_032, 3_857_973_248, 4.089e9, 3.8e9, (76.13, 92.862)),
    101: (44_549_160, 7_570_194_432, 7.801e9, 7.6e9, (77.374, 93.546)),
    152: (60_192_808, 11_282_415_616, 11.514e9, 11.3e9, (78.312, 94.046)),
}
# depth: (exact params at 10 classes, paper Table 6 params, CIFAR-10 test error %)
_CIFAR: dict[int, tuple[int, float, float]] = {
    20: (269_722, 0.27e6, 8.75),
    32: (464_154, 0.46e6, 7.51),
    44: (658_586, 0.66e6, 7.17),
    56: (853_018, 0.85e6, 6.97),
    110: (1_727_962, 1.7e6, 6.43),
    1202: (19_421_274, 19.4e6, 7.93),
}
_TABLE6 = "He et al. 2016, Table 6 [V: akamaster/pytorch_resnet_cifar10 README]"

for _depth, (_params, _macs_v1, _tv_ops, _table1, (_acc1, _acc5)) in _IMAGENET.items():
    _bottleneck = _depth >= 50
    _common = dict(
        family="resnet",
        paper=PAPER,
        input_size=(3, 224, 224),
        num_classes=1000,
        params=_params,
        min_size=IMAGENET_MIN_SIZE,
        recipe="resnet_imagenet",
        slow=_depth >= 101,
    )
    register_model(
        ResNet,
        ModelInfo(
            name=f"resnet{_depth}",
            description=f"ResNet-{_depth} (He et al. Table 1), {'bottleneck' if _bottleneck else 'basic'} blocks, "
            "projection shortcuts where the shape changes"
            + (", stride 2 in the first 1x1 of a downsampling bottleneck (v1)" if _bottleneck else ""),
            paper_macs=float(_macs_v1),
            paper_macs_source=(
                f"computed: conv+fc multiply-adds of this build at 224x224; He et al. Table 1 gives {_table1:.1e} "
                "FLOPs (= multiply-adds) [R]" + ("" if _bottleneck else " (v1 = v1.5 here: torchvision _ops agrees)")
            ),
            results=_IMAGENET_RESULTS.get(_depth, ()),
            deviations=(
                "ResNet-18/34: He et al. Table 2 trains them with option A shortcuts [R]; this build uses option B "
                "(Table 3's ResNet-34 B, the option of the deeper nets, and torchvision's layout)",
            )
            if not _bottleneck
            else (),
            tags=("imagenet", "torchvision-compatible") if not _bottleneck else ("imagenet",),
            torchvision=None if _bottleneck else f"resnet{_depth}",
            **_common,
        ),
        torchvision_key_map=None if _bottleneck else torchvision_key_map,
        spec=SPECS[f"resnet{_depth}"],
    )
    register_model(
        ResNet,
        ModelInfo(
            name=f"resnet{_depth}_tv",
            description=f"torchvision's ResNet-{_depth} (v1.5: stride in the 3x3 of a downsampling bottleneck); "
            "loads torchvision state dicts",
            paper_params=float(_params),
            paper_params_source=f"torchvision ResNet{_depth}_Weights.IMAGENET1K_V1 meta num_params",
            paper_macs=_tv_ops,
            paper_macs_source=f"torchvision ResNet{_depth}_Weights.IMAGENET1K_V1 meta _ops (= conv+fc MACs)",
            results=_top_errors(
                round(100 - _acc1, 3),
                round(100 - _acc5, 3),
                "ILSVRC-2012 val, 1 crop 224, resize 256 (torchvision weights)",
                f"torchvision ResNet{_depth}_Weights.IMAGENET1K_V1 meta",
            ),
            deviations=("stride 2 in the 3x3, not the first 1x1, of a downsampling bottleneck (v1.5)",)
            if _bottleneck
            else (),
            torchvision=f"resnet{_depth}",
            tags=("imagenet", "torchvision-compatible"),
            **_common,
        ),
        torchvision_key_map=torchvision_key_map,
        spec=SPECS[f"resnet{_depth}_tv"],
    )

for _depth, (_params, _paper_params, _error) in _CIFAR.items():
    register_model(
        ResNet,
        ModelInfo(
            name=f"resnet{_depth}",
            family="resnet",
            paper=PAPER,
            input_size=(3, 32, 32),
            num_classes=10,
            params=_params,
            description=f"CIFAR ResNet-{_depth} (He et al. §4.2): 6n+2 layers with n={(_depth - 2) // 6}, "
            "widths 16/32/64 on 32/16/8 maps, zero-padded identity shortcuts (option A)",
            min_size=CIFAR_MIN_SIZE,
            paper_params=_paper_params,
            paper_params_source=_TABLE6,
            results=(PaperResult("top1_error_pct", _error, "CIFAR-10 test (+aug)", _TABLE6),),
            recipe="resnet_cifar",
            slow=_depth >= 1202,
            tags=("cifar",),
        ),
        spec=SPECS[f"resnet{_depth}"],
    )
