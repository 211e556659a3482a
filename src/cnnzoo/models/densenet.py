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

Details taken from the authors' Torch code (liuzhuang13/DenseNet ``models/densenet.lua``) where the paper is silent:
the transition is BN-ReLU-conv1x1-avgpool (the paper's text omits the ReLU; torchvision has it too), convolutions
have no bias, and weights are initialised as in ResNet (normal, std sqrt(2 / (k*k*out_channels))).

Options:
    drop_rate: dropout after every convolution except the first (§4.2: 0.2, used only *without* data
        augmentation). The default 0 is the paper's setting for augmented data and ImageNet.
    memory_efficient: recompute the concatenation + first BN-ReLU-conv of each layer in the backward pass instead
        of storing it (Pleiss et al., "Memory-Efficient Implementation of DenseNets", arXiv:1707.06990; torchvision's
        ``memory_efficient``). Outputs, gradients and BN running statistics equal the plain path.

Deviations: none in the architecture. Unlike torchvision, ``drop_rate`` also drops after the bottleneck 1x1 and the
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

from ..registry import ModelInfo, PaperResult, register_model

PAPER = "Huang, Liu, van der Maaten, Weinberger. Densely Connected Convolutional Networks. CVPR 2017 (arXiv:1608.06993)"


@dataclass(frozen=True)
class DenseNetSpec:
    growth_rate: int  # k: feature maps each dense layer adds (§3 "Growth rate")
    block_layers: tuple[int, ...]  # dense layers per block
    stem_channels: int  # §4.2: 16, or 2k for DenseNet-BC; ImageNet: 2k
    bottleneck: bool  # "B": BN-ReLU-conv1x1(4k) before each BN-ReLU-conv3x3(k) (§3 "Bottleneck layers")
    compression: float  # "C": a transition outputs floor(theta * m) maps (§3 "Compression"; BC: theta = 0.5)
    stem: Literal["cifar", "imagenet"]  # 3x3 conv (§4.2), or 7x7/2 conv + 3x3/2 max pool (Table 1)
    bn_size: int = 4  # bottleneck width in units of k (§3: "let each 1x1 convolution produce 4k feature-maps")


SPECS: dict[str, DenseNetSpec] = {
    # Table 1 (ImageNet, all DenseNet-BC with k=32); DenseNet-161: k=48, stem 96 (authors' Torch code, torchvision)
    "densenet121": DenseNetSpec(32, (6, 12, 24, 16), 64, True, 0.5, "imagenet"),
    "densenet169": DenseNetSpec(32, (6, 12, 32, 32), 64, True, 0.5, "imagenet"),
    "densenet201": DenseNetSpec(32, (6, 12, 48, 32), 64, True, 0.5, "imagenet"),
    "densenet161": DenseNetSpec(48, (6, 12, 36, 24), 96, True, 0.5, "imagenet"),
    # §4.2 / Table 2 (CIFAR): 3 blocks of (L-4)/3 layers; BC: (L-4)/6 bottleneck layers per block
    "densenet40_k12": DenseNetSpec(12, (12, 12, 12), 16, False, 1.0, "cifar"),
    "densenet100_k12": DenseNetSpec(12, (32, 32, 32), 16, False, 1.0, "cifar"),
    "densenet100_k24": DenseNetSpec(24, (32, 32, 32), 16, False, 1.0, "cifar"),
    "densenet_bc100_k12": DenseNetSpec(12, (16, 16, 16), 24, True, 0.5, "cifar"),
    "densenet_bc250_k24": DenseNetSpec(24, (41, 41, 41), 48, True, 0.5, "cifar"),
    "densenet_bc190_k40": DenseNetSpec(40, (31, 31, 31), 80, True, 0.5, "cifar"),
}


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
        drop_rate: float,
        memory_efficient: bool,
    ) -> None:
        super().__init__()
        first_out = bn_size * growth_rate if bottleneck else growth_rate
        kernel = 1 if bottleneck else 3
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, first_out, kernel, padding=kernel // 2, bias=False)
        self.drop1 = _dropout(drop_rate)
        if bottleneck:
            self.norm2 = nn.BatchNorm2d(first_out)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(first_out, growth_rate, 3, padding=1, bias=False)
            self.drop2 = _dropout(drop_rate)
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

    def __init__(self, in_channels: int, out_channels: int, *, drop_rate: float = 0.0) -> None:
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(in_channels),
                relu=nn.ReLU(inplace=True),
                conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
                drop=_dropout(drop_rate),
                pool=nn.AvgPool2d(2, stride=2),
            )
        )


class DenseNet(nn.Module):
    """stem -> (dense block, transition)* -> dense block -> head (BN-ReLU-global average pool-FC)."""

    def __init__(
        self,
        spec: DenseNetSpec,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        drop_rate: float = 0.0,
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
                drop_rate=drop_rate,
                memory_efficient=memory_efficient,
            )
            channels += num_layers * spec.growth_rate
            if i < len(spec.block_layers):
                out_channels = math.floor(spec.compression * channels)
                stages[f"transition{i}"] = Transition(channels, out_channels, drop_rate=drop_rate)
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

        # Authors' code ("Initialization following ResNet"): conv ~ N(0, 2 / (k*k*out_channels)), BN (1, 0),
        # FC bias 0 (FC weight keeps the framework default).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.stages(x)
        return self.head(x)


def from_torchvision(state: dict[str, Any]) -> dict[str, Any]:
    """torchvision ``DenseNet`` keys -> ours: features.conv0/norm0 -> stem, denseblock/transition -> stages,
    features.norm5 -> head.norm, classifier -> head.fc."""
    rules = (
        (r"^features\.(conv|norm)0\.", r"stem.\1."),
        (r"^features\.norm5\.", "head.norm."),
        (r"^features\.", "stages."),
        (r"^classifier\.", "head.fc."),
    )
    mapped = {}
    for key, value in state.items():
        for pattern, replacement in rules:
            key, hits = re.subn(pattern, replacement, key)
            if hits:
                break
        mapped[key] = value
    return mapped


_TABLE2 = "Huang et al. 2017, Table 2 (= liuzhuang13/DenseNet README)"
_CIFAR_DATASETS = (
    "CIFAR-10 test, no augmentation (dropout 0.2)",
    "CIFAR-10 test (+ translation/mirroring)",
    "CIFAR-100 test, no augmentation (dropout 0.2)",
    "CIFAR-100 test (+ translation/mirroring)",
)
# name: (exact params at 10 classes, paper params, top-1 error % on C10, C10+, C100, C100+ (None: not reported))
_CIFAR = {
    "densenet40_k12": (1_019_722, 1.0e6, (7.00, 5.24, 27.55, 24.42)),
    "densenet100_k12": (6_979_642, 7.0e6, (5.77, 4.10, 23.79, 20.20)),
    "densenet100_k24": (27_249_082, 27.2e6, (5.83, 3.74, 23.42, 19.25)),
    "densenet_bc100_k12": (769_162, 0.8e6, (5.92, 4.51, 24.15, 22.27)),
    "densenet_bc250_k24": (15_324_406, 15.3e6, (5.19, 3.62, 19.64, 17.60)),
    "densenet_bc190_k40": (25_624_430, 25.6e6, (None, 3.46, None, 17.18)),
}
# name: (exact params at 1000 classes, MACs at 224 (torchvision meta "_ops"), top-1 error % of the authors' models)
_IMAGENET = {
    "densenet121": (7_978_856, 2.834e9, 25.0),
    "densenet169": (14_149_480, 3.36e9, 23.6),
    "densenet201": (20_013_928, 4.291e9, 22.5),
    "densenet161": (28_681_000, 7.728e9, 22.2),
}

for _name, (_params, _paper_params, _errors) in _CIFAR.items():
    _spec = SPECS[_name]
    _depth = (6 if _spec.bottleneck else 3) * _spec.block_layers[0] + 4  # §4.2: L counts every conv and the FC
    register_model(
        DenseNet,
        ModelInfo(
            name=_name,
            family="densenet",
            paper=PAPER,
            input_size=(3, 32, 32),
            num_classes=10,
            params=_params,
            description=(
                f"CIFAR DenseNet{'-BC' if _spec.bottleneck else ''} (L={_depth}, k={_spec.growth_rate}), "
                f"stem {_spec.stem_channels}" + (", bottleneck 4k, compression 0.5" if _spec.bottleneck else "")
            ),
            min_size=4,  # two 2x2 average pools, then global pooling
            paper_params=_paper_params,
            paper_params_source=_TABLE2,
            results=tuple(
                PaperResult("top1_error_pct", e, data, _TABLE2) for e, data in zip(_errors, _CIFAR_DATASETS) if e
            ),
            recipe="densenet_cifar",
            tags=("cifar",),
        ),
        spec=_spec,
    )

for _name, (_params, _macs, _top1_error) in _IMAGENET.items():
    _spec = SPECS[_name]
    register_model(
        DenseNet,
        ModelInfo(
            name=_name,
            family="densenet",
            paper=PAPER,
            input_size=(3, 224, 224),
            num_classes=1000,
            params=_params,
            description=f"ImageNet DenseNet-BC, k={_spec.growth_rate}, blocks {'-'.join(map(str, _spec.block_layers))}",
            min_size=32,  # /32 overall: stem /4, three transitions /8
            paper_macs=_macs,
            paper_macs_source="torchvision 0.29.1 weights meta '_ops' (conv+linear MACs at 224x224)",
            results=(
                PaperResult(
                    "top1_error_pct",
                    _top1_error,
                    "ImageNet-2012 val, 224x224 single crop",
                    "liuzhuang13/DenseNet README (the authors' Torch models)",
                ),
            ),
            torchvision=_name,
            recipe="densenet_imagenet",
            tags=("imagenet", "torchvision"),
        ),
        torchvision_key_map=from_torchvision,
        spec=_spec,
    )
