"""DenseNet: Huang, Liu, van der Maaten, Weinberger. Densely Connected Convolutional Networks. CVPR 2017.

Every layer of a dense block receives the concatenation of all earlier feature maps of the block and adds
``growth_rate`` (k) new ones (§3). Registered names:

======================== ========================================================== =============
name                     what                                                       params
======================== ========================================================== =============
``densenet121``          ImageNet DenseNet-BC, k=32, blocks 6-12-24-16 (Table 1)    7,978,856
``densenet169``          ImageNet DenseNet-BC, k=32, blocks 6-12-32-32              14,149,480
``densenet201``          ImageNet DenseNet-BC, k=32, blocks 6-12-48-32              20,013,928
``densenet161``          ImageNet DenseNet-BC, k=48, blocks 6-12-36-24, stem 96     28,681,000
``densenet40_k12``       CIFAR DenseNet (L=40, k=12), stem 16                       1,019,722
``densenet100_k12``      CIFAR DenseNet (L=100, k=12)                               6,979,642
``densenet100_k24``      CIFAR DenseNet (L=100, k=24)                               27,249,082
``densenet_bc100_k12``   CIFAR DenseNet-BC (L=100, k=12), stem 2k                   769,162
``densenet_bc250_k24``   CIFAR DenseNet-BC (L=250, k=24)                            15,324,406
``densenet_bc190_k40``   CIFAR DenseNet-BC (L=190, k=40)                            25,624,430
======================== ========================================================== =============

(CIFAR counts at 10 classes, ImageNet at 1000.) The ImageNet variants load torchvision state dicts
(``features.denseblock1...`` keys are mapped onto ``stem``/``stages``/``head``).

Weights are initialised as in ResNet (the authors' ``densenet.lua``: normal, std sqrt(2 / (k*k*out_channels));
`init_he_`). Details from that code where the paper is silent: the transition is BN-ReLU-conv1x1-avgpool (the paper's
text omits the ReLU; torchvision has it too), convolutions have no bias, and ``dropout`` follows every convolution
except the network's first (§4.2), the bottleneck 1x1 and the transition conv included.

Options:
    dropout: after every convolution except the first (§4.2: 0.2, used only *without* data augmentation). The
        default 0 is the paper's setting for augmented data and ImageNet.
    memory_efficient: recompute each layer's concatenation + first BN-ReLU-conv in the backward pass instead of
        storing it (Pleiss et al., "Memory-Efficient Implementation of DenseNets", arXiv:1707.06990; torchvision's
        ``memory_efficient``); same outputs, gradients and batch-norm running statistics.

Deviations: none in the architecture. Unlike torchvision, ``dropout`` also drops after the bottleneck 1x1 and the
transition convolutions, as the authors' code does (identical at the default 0).
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..layers.init import init_he_
from ..registry import ModelInfo, PaperResult, register_model

PAPER = "Huang, Liu, van der Maaten, Weinberger. Densely Connected Convolutional Networks. CVPR 2017 (arXiv:1608.06993)"


def _dropout(p: float) -> nn.Module:
    return nn.Dropout(p) if p > 0 else nn.Identity()


class DenseLayer(nn.Module):
    """BN-ReLU-conv3x3(k); with the bottleneck BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k) (§3).

    Called with all earlier feature maps of the block; the first BN reads their concatenation.
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        *,
        bottleneck: bool,
        bn_size: int,
        dropout: float,
        memory_efficient: bool,
    ) -> None:
        super().__init__()
        first_out = bn_size * growth_rate if bottleneck else growth_rate
        kernel = 1 if bottleneck else 3
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, first_out, kernel, padding=kernel // 2, bias=False)
        self.drop1 = _dropout(dropout)
        if bottleneck:
            self.norm2 = nn.BatchNorm2d(first_out)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(first_out, growth_rate, 3, padding=1, bias=False)
            self.drop2 = _dropout(dropout)
        self.bottleneck = bottleneck
        self.memory_efficient = memory_efficient

    def _first_unit(self, *features: Tensor) -> Tensor:
        return self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))

    @contextmanager
    def _norm1_stats_frozen(self) -> Iterator[None]:
        # The recomputation must not update norm1's running statistics a second time (the authors' optMemory=4
        # saves and restores them for the same reason). Momentum 0 keeps them (running = 1*running + 0*batch)
        # while the recomputed graph stays identical to the forward's; the batch counter is put back.
        momentum, batches = self.norm1.momentum, self.norm1.num_batches_tracked.clone()
        self.norm1.momentum = 0.0
        try:
            yield
        finally:
            self.norm1.momentum = momentum
            self.norm1.num_batches_tracked.copy_(batches)

    def forward(self, *features: Tensor) -> Tensor:
        if self.memory_efficient and torch.is_grad_enabled() and any(f.requires_grad for f in features):
            # Pleiss et al. 2017: the concatenation and the first BN-ReLU-conv are recomputed in backward.
            out = checkpoint(
                self._first_unit,
                *features,
                use_reentrant=False,
                context_fn=lambda: (nullcontext(), self._norm1_stats_frozen()),
            )
        else:
            out = self._first_unit(*features)
        out = self.drop1(out)
        if self.bottleneck:
            out = self.drop2(self.conv2(self.relu2(self.norm2(out))))
        return out


class DenseBlock(nn.ModuleDict):
    """Layer l reads [x_0, x_1, ..., x_{l-1}] (§3 "Dense connectivity"); the block outputs all of them concatenated."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, **layer_options: Any) -> None:
        super().__init__(
            (f"denselayer{i + 1}", DenseLayer(in_channels + i * growth_rate, growth_rate, **layer_options))
            for i in range(num_layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(*features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1-avgpool2x2 between dense blocks (§3 "Pooling layers"; ReLU as in the authors' code)."""

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float = 0.0) -> None:
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(in_channels),
                relu=nn.ReLU(inplace=True),
                conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
                drop=_dropout(dropout),
                pool=nn.AvgPool2d(2, stride=2),
            )
        )


@dataclass(frozen=True)
class DenseNetSpec:
    growth_rate: int  # k: feature maps each dense layer adds (§3 "Growth rate")
    block_layers: tuple[int, ...]  # dense layers per block
    stem_channels: int  # §4.2: 16, or 2k for DenseNet-BC; ImageNet: 2k
    bottleneck: bool  # "B": BN-ReLU-conv1x1(4k) before each BN-ReLU-conv3x3(k) (§3 "Bottleneck layers")
    compression: float  # "C": a transition outputs floor(theta * m) maps (§3 "Compression"; BC: theta = 0.5)
    stem: Literal["cifar", "imagenet"]  # 3x3 conv (§4.2), or 7x7/2 conv + 3x3/2 max pool (Table 1)
    bn_size: int = 4  # bottleneck width in units of k (§3: "let each 1x1 convolution produce 4k feature-maps")


def _imagenet(growth_rate: int, block_layers: tuple[int, ...], stem_channels: int) -> DenseNetSpec:
    return DenseNetSpec(growth_rate, block_layers, stem_channels, bottleneck=True, compression=0.5, stem="imagenet")


def _cifar(growth_rate: int, depth: int, *, bc: bool) -> DenseNetSpec:
    layers = (depth - 4) // (6 if bc else 3)  # §4.2: L = 3 blocks x layers x (2 convs if BC) + 4
    stem = 2 * growth_rate if bc else 16
    return DenseNetSpec(growth_rate, (layers,) * 3, stem, bottleneck=bc, compression=0.5 if bc else 1.0, stem="cifar")


SPECS: dict[str, DenseNetSpec] = {
    # Table 1 (ImageNet, all DenseNet-BC with k=32); DenseNet-161: k=48, stem 96 (authors' Torch code, torchvision)
    "densenet121": _imagenet(32, (6, 12, 24, 16), 64),
    "densenet169": _imagenet(32, (6, 12, 32, 32), 64),
    "densenet201": _imagenet(32, (6, 12, 48, 32), 64),
    "densenet161": _imagenet(48, (6, 12, 36, 24), 96),
    # §4.2 / Table 2 (CIFAR): 3 blocks of (L-4)/3 layers; BC: (L-4)/6 bottleneck layers per block, stem 2k
    "densenet40_k12": _cifar(12, 40, bc=False),
    "densenet100_k12": _cifar(12, 100, bc=False),
    "densenet100_k24": _cifar(24, 100, bc=False),
    "densenet_bc100_k12": _cifar(12, 100, bc=True),
    "densenet_bc250_k24": _cifar(24, 250, bc=True),
    "densenet_bc190_k40": _cifar(40, 190, bc=True),
}


class DenseNet(nn.Module):
    """stem -> (dense block, transition)* -> dense block -> head (BN-ReLU-global average pool-FC)."""

    def __init__(
        self,
        spec: DenseNetSpec,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.0,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        if spec.stem == "imagenet":
            stem = OrderedDict(
                conv=nn.Conv2d(in_channels, spec.stem_channels, 7, stride=2, padding=3, bias=False),
                norm=nn.BatchNorm2d(spec.stem_channels),
                relu=nn.ReLU(inplace=True),
                pool=nn.MaxPool2d(3, stride=2, padding=1),
            )
        else:
            stem = OrderedDict(conv=nn.Conv2d(in_channels, spec.stem_channels, 3, padding=1, bias=False))
        self.stem = nn.Sequential(stem)

        channels = spec.stem_channels
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        for i, num_layers in enumerate(spec.block_layers, start=1):
            stages[f"denseblock{i}"] = DenseBlock(
                num_layers,
                channels,
                spec.growth_rate,
                bottleneck=spec.bottleneck,
                bn_size=spec.bn_size,
                dropout=dropout,
                memory_efficient=memory_efficient,
            )
            channels += num_layers * spec.growth_rate
            if i < len(spec.block_layers):
                out_channels = math.floor(spec.compression * channels)
                stages[f"transition{i}"] = Transition(channels, out_channels, dropout=dropout)
                channels = out_channels
        self.stages = nn.Sequential(stages)

        self.head = nn.Sequential(
            OrderedDict(
                norm=nn.BatchNorm2d(channels),
                relu=nn.ReLU(inplace=True),
                pool=nn.AdaptiveAvgPool2d(1),  # the paper's 8x8 (CIFAR) / 7x7 (ImageNet) global average pool
                flatten=nn.Flatten(),
                fc=nn.Linear(channels, num_classes),
            )
        )
        init_he_(self, zero_linear_bias=True)  # authors' code: "Initialization following ResNet", FC bias 0

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.stages(x)
        return self.head(x)


# torchvision's published DenseNet files name a dense layer's modules "norm.1", "relu.1", "conv.1", "norm.2", ...
# (module names with dots, from before PyTorch forbade them); torchvision's own loader renames them with this
# pattern. Current state dicts say "norm1", as ours.
_LEGACY_LAYER_KEY = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.")
_TORCHVISION_RENAMES = (  # the first rule that matches applies
    (re.compile(r"^features\.(conv|norm)0\."), r"stem.\1."),
    (re.compile(r"^features\.norm5\."), "head.norm."),
    (re.compile(r"^features\."), "stages."),
    (re.compile(r"^classifier\."), "head.fc."),
)


def from_torchvision(state: dict[str, Any]) -> dict[str, Any]:
    """torchvision ``DenseNet`` keys, current or legacy (``denselayerN.norm.1``), -> ours: features.conv0/norm0 ->
    stem, denseblock/transition -> stages, features.norm5 -> head.norm, classifier -> head.fc."""
    mapped = {}
    for key, value in state.items():
        key = _LEGACY_LAYER_KEY.sub(r"\1\2.", key)
        for pattern, replacement in _TORCHVISION_RENAMES:
            key, hits = pattern.subn(replacement, key)
            if hits:
                break
        mapped[key] = value
    return mapped


@dataclass(frozen=True)
class _CifarRow:
    """One CIFAR network of Huang et al. Table 2 (top-1 error %; None where the table has no entry)."""

    params: int  # exact, this build at 10 classes
    paper_params: str  # Table 2, as printed
    c10: float | None  # CIFAR-10, no augmentation (dropout 0.2)
    c10_aug: float  # CIFAR-10 + translation/mirroring
    c100: float | None
    c100_aug: float


@dataclass(frozen=True)
class _ImageNetRow:
    params: int  # exact, this build at 1000 classes
    macs: str  # at 224x224: torchvision weights meta "_ops" (GMACs)
    top1_error: float  # the authors' Torch models, single crop


_TABLE2 = "Huang et al. 2017, Table 2 (= liuzhuang13/DenseNet README)"
_CIFAR = {
    "densenet40_k12": _CifarRow(1_019_722, "1.0M", c10=7.00, c10_aug=5.24, c100=27.55, c100_aug=24.42),
    "densenet100_k12": _CifarRow(6_979_642, "7.0M", c10=5.77, c10_aug=4.10, c100=23.79, c100_aug=20.20),
    "densenet100_k24": _CifarRow(27_249_082, "27.2M", c10=5.83, c10_aug=3.74, c100=23.42, c100_aug=19.25),
    "densenet_bc100_k12": _CifarRow(769_162, "0.8M", c10=5.92, c10_aug=4.51, c100=24.15, c100_aug=22.27),
    "densenet_bc250_k24": _CifarRow(15_324_406, "15.3M", c10=5.19, c10_aug=3.62, c100=19.64, c100_aug=17.60),
    "densenet_bc190_k40": _CifarRow(25_624_430, "25.6M", c10=None, c10_aug=3.46, c100=None, c100_aug=17.18),
}
_IMAGENET = {
    "densenet121": _ImageNetRow(params=7_978_856, macs="2.834G", top1_error=25.0),
    "densenet169": _ImageNetRow(params=14_149_480, macs="3.36G", top1_error=23.6),
    "densenet201": _ImageNetRow(params=20_013_928, macs="4.291G", top1_error=22.5),
    "densenet161": _ImageNetRow(params=28_681_000, macs="7.728G", top1_error=22.2),
}


def _cifar_results(row: _CifarRow) -> tuple[PaperResult, ...]:
    errors = {
        "CIFAR-10 test, no augmentation (dropout 0.2)": row.c10,
        "CIFAR-10 test (+ translation/mirroring)": row.c10_aug,
        "CIFAR-100 test, no augmentation (dropout 0.2)": row.c100,
        "CIFAR-100 test (+ translation/mirroring)": row.c100_aug,
    }
    return tuple(PaperResult("top1_error_pct", e, data, _TABLE2) for data, e in errors.items() if e is not None)


# the fields every CIFAR row shares, and every ImageNet row
_CIFAR_ROW = dict(
    family="densenet",
    paper=PAPER,
    input_size=(3, 32, 32),
    num_classes=10,
    min_size=4,  # two 2x2 average pools, then global pooling
    paper_params_source=_TABLE2,
    recipe="densenet_cifar",
)
_IMAGENET_ROW = dict(
    family="densenet",
    paper=PAPER,
    input_size=(3, 224, 224),
    num_classes=1000,
    min_size=32,  # /32 overall: stem /4, three transitions /8
    paper_macs_source="torchvision 0.29.1 weights meta '_ops' (conv+linear MACs at 224x224)",
    recipe="densenet_imagenet",
)

for _name, _row in _CIFAR.items():
    _spec = SPECS[_name]
    _depth = (6 if _spec.bottleneck else 3) * _spec.block_layers[0] + 4  # §4.2: L counts every conv and the FC
    register_model(
        DenseNet,
        ModelInfo.row(
            _CIFAR_ROW,
            name=_name,
            params=_row.params,
            description=(
                f"CIFAR DenseNet{'-BC' if _spec.bottleneck else ''} (L={_depth}, k={_spec.growth_rate}), "
                f"stem {_spec.stem_channels}" + (", bottleneck 4k, compression 0.5" if _spec.bottleneck else "")
            ),
            paper_params=_row.paper_params,
            results=_cifar_results(_row),
        ),
        spec=_spec,
    )

for _name, _row in _IMAGENET.items():
    _spec = SPECS[_name]
    register_model(
        DenseNet,
        ModelInfo.row(
            _IMAGENET_ROW,
            name=_name,
            params=_row.params,
            description=f"ImageNet DenseNet-BC, k={_spec.growth_rate}, blocks {'-'.join(map(str, _spec.block_layers))}",
            paper_macs=_row.macs,
            results=(
                PaperResult(
                    "top1_error_pct",
                    _row.top1_error,
                    "ImageNet-2012 val, 224x224 single crop",
                    "liuzhuang13/DenseNet README (the authors' Torch models)",
                ),
            ),
            torchvision=_name,
        ),
        torchvision_key_map=from_torchvision,
        spec=_spec,
    )
