"""SqueezeNet: Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer, arXiv:1602.07360, 2016.

| name                   | what                                                                   | params    |
|------------------------|------------------------------------------------------------------------|-----------|
| `squeezenet1_0`        | Table 1: conv1 96@7x7/2, fire2-9, conv10, global average pool          | 1,248,424 |
| `squeezenet1_1`        | the official v1.1: conv1 64@3x3/2, pools after conv1/fire3/fire5       | 1,235,496 |
| `squeezenet1_0_bypass` | §6 "simple bypass": identity added around fire3, fire5, fire7 and fire9 | 1,248,424 |

A Fire module (§3.2) squeezes with s1x1 1x1 filters, then expands with e1x1 1x1 and e3x3 3x3 filters whose outputs
are concatenated (s1x1 < e1x1 + e3x3), each conv followed by a ReLU. There is no fully connected layer: conv10 emits
one map per class, then ReLU and global average pooling.

The official Caffe prototxt pads the 1x1 conv10 by 1 (a border of bias-only responses enters the average);
torchvision does not, and neither do we (a listed deviation).

Module and attribute names are torchvision's (`features`, `classifier`; `squeeze`, `expand1x1`, `expand3x3`), so
torchvision state dicts load without a key map. As in the official Caffe models and torchvision, max-pools round up
(Caffe's ceil mode).

Initialisation (official `train_val.prototxt`): Caffe's "xavier" filler, U(-sqrt(3 / fan_in), +sqrt(3 / fan_in)),
for every conv but conv10, which is N(0, 0.01); biases 0. (torchvision uses kaiming_uniform, a bound sqrt(2) wider.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..layers.init import caffe_xavier_
from ..registry import ModelInfo, PaperResult, register_model


class FireModule(nn.Module):
    """squeeze 1x1 -> ReLU -> [expand 1x1 -> ReLU || expand 3x3 -> ReLU] -> concat (Iandola et al. §3.2, Fig. 1).

    ``bypass=True`` adds the module's input to its output (§6, "simple bypass"); it needs equal in/out channels.
    """

    def __init__(
        self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int, *, bypass: bool = False
    ) -> None:
        super().__init__()
        if bypass and in_channels != expand1x1 + expand3x3:
            raise ValueError(
                f"a simple bypass needs equal in/out channels, got {in_channels} -> {expand1x1 + expand3x3}"
            )
        self.bypass = bypass
        self.squeeze = nn.Conv2d(in_channels, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        s = self.squeeze_activation(self.squeeze(x))
        out = torch.cat(
            [self.expand1x1_activation(self.expand1x1(s)), self.expand3x3_activation(self.expand3x3(s))], dim=1
        )
        # §6: the bypass is a plain element-wise sum after the concat, no extra ReLU (SqueezeNet-Residual prototxt)
        return out + x if self.bypass else out

    def extra_repr(self) -> str:
        return "bypass=True" if self.bypass else ""


@dataclass(frozen=True)
class FireSpec:
    """One Fire module, in Table 1's columns."""

    squeeze: int  # s1x1
    expand1x1: int  # e1x1
    expand3x3: int  # e3x3


@dataclass(frozen=True)
class SqueezeNetSpec:
    conv1_channels: int
    conv1_kernel_size: int  # stride 2, no padding
    fires: tuple[FireSpec, ...]  # fire2 ... fire9
    pool_after: tuple[int, ...]  # a 3x3/2 max-pool follows these Fire modules (numbered 2-9, as in the paper)
    bypass: tuple[int, ...] = ()  # §6: simple bypass around these Fire modules


# Iandola et al. Table 1: fire2-9 (s1x1, e1x1, e3x3); v1.1 keeps them and moves the pools (official v1.1 README)
_FIRES = (
    FireSpec(16, 64, 64),  # fire2
    FireSpec(16, 64, 64),  # fire3
    FireSpec(32, 128, 128),  # fire4
    FireSpec(32, 128, 128),  # fire5
    FireSpec(48, 192, 192),  # fire6
    FireSpec(48, 192, 192),  # fire7
    FireSpec(64, 256, 256),  # fire8
    FireSpec(64, 256, 256),  # fire9
)

SPECS: dict[str, SqueezeNetSpec] = {
    "squeezenet1_0": SqueezeNetSpec(96, 7, _FIRES, pool_after=(4, 8)),  # Table 1: maxpool1, maxpool4, maxpool8
    "squeezenet1_1": SqueezeNetSpec(64, 3, _FIRES, pool_after=(3, 5)),  # v1.1 README: pool{1,3,5}
    # §6: "simple bypass connections around Fire modules 3, 5, 7, and 9" (where in and out channels match)
    "squeezenet1_0_bypass": SqueezeNetSpec(96, 7, _FIRES, pool_after=(4, 8), bypass=(3, 5, 7, 9)),
}


class SqueezeNet(nn.Module):
    """conv1 -> maxpool -> Fire modules with max-pools -> dropout -> conv10 -> ReLU -> global average pool.

    Args:
        spec: the layer table (`SPECS`).
        dropout: dropout probability before conv10 (the official model: 0.5 after fire9).
    """

    def __init__(
        self, spec: SqueezeNetSpec, *, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, spec.conv1_channels, kernel_size=spec.conv1_kernel_size, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        ]
        channels = spec.conv1_channels
        for number, fire in enumerate(spec.fires, start=2):
            bypass = number in spec.bypass
            layers.append(FireModule(channels, fire.squeeze, fire.expand1x1, fire.expand3x3, bypass=bypass))
            channels = fire.expand1x1 + fire.expand3x3
            if number in spec.pool_after:
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        conv10 = nn.Conv2d(channels, num_classes, kernel_size=1)  # one map per class: no FC layer
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), conv10, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)
        )
        self.flatten = nn.Flatten()

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is conv10:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    caffe_xavier_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)  # conv1, pool, fire2-9 with pools
        x = self.classifier(x)  # dropout, conv10, ReLU, global average pool
        return self.flatten(x)


PAPER = (
    "Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer. SqueezeNet: AlexNet-level accuracy with 50x fewer parameters "
    "and <0.5MB model size. arXiv:1602.07360, 2016"
)
_VAL = "ImageNet val (ILSVRC-2012)"
_TV = "torchvision SqueezeNet{}_Weights.IMAGENET1K_V1"
# The official prototxt pads the 1x1 conv10 by 1: a border of bias-only positions enters the global average.
_COMMON_DEVIATIONS = ("conv10 without the official prototxt's pad 1, as torchvision",)
# the fields every SqueezeNet row shares
_SQUEEZENET = dict(
    family="squeezenet", paper=PAPER, input_size=(3, 227, 227), num_classes=1000, recipe="squeezenet"
)

register_model(
    SqueezeNet,
    ModelInfo.row(
        _SQUEEZENET,
        name="squeezenet1_0",
        params=1_248_424,
        description=(
            "AlexNet-level accuracy with 50x fewer parameters: conv1 96@7x7/2, eight Fire modules (squeeze 1x1, "
            "expand 1x1 + 3x3, concat), late max-pools, dropout 0.5, conv10 1x1 to the classes and global average "
            "pooling. 227x227 input as in the official model (Table 1's 111x111 conv1 map needs 227)."
        ),
        min_size=21,
        paper_params="1,248,424",
        paper_params_source="Iandola et al. 2016, Table 1 (#parameters before pruning)",
        results=(
            PaperResult("top1_error_pct", 42.5, _VAL, "Iandola et al. 2016, Table 2 (57.5% top-1)"),
            PaperResult("top5_error_pct", 19.7, _VAL, "Iandola et al. 2016, Table 2 (80.3% top-5)"),
            PaperResult("top1_error_pct", 41.908, "ImageNet-1k val, 224 crop", _TV.format("1_0") + " (acc@1 58.092)"),
            PaperResult("top5_error_pct", 19.58, "ImageNet-1k val, 224 crop", _TV.format("1_0") + " (acc@5 80.420)"),
        ),
        deviations=_COMMON_DEVIATIONS,
        torchvision="squeezenet1_0",
    ),
    spec=SPECS["squeezenet1_0"],
)

register_model(
    SqueezeNet,
    ModelInfo.row(
        _SQUEEZENET,
        name="squeezenet1_1",
        paper=PAPER + "; v1.1 from the official repository (forresti/SqueezeNet, SqueezeNet_v1.1/README.md)",
        params=1_235_496,
        description=(
            "SqueezeNet v1.1: conv1 64@3x3/2 and the max-pools moved earlier (after conv1, fire3, fire5): about 2.4x "
            "less computation than v1.0 at the same accuracy, with the same Fire modules."
        ),
        min_size=17,
        paper_params="1,235,496",
        paper_params_source="torchvision SqueezeNet1_1_Weights meta num_params (v1.1 is not in the paper)",
        results=(
            PaperResult("top1_error_pct", 41.822, "ImageNet-1k val, 224 crop", _TV.format("1_1") + " (acc@1 58.178)"),
            PaperResult("top5_error_pct", 19.376, "ImageNet-1k val, 224 crop", _TV.format("1_1") + " (acc@5 80.624)"),
        ),
        deviations=("v1.1 is the official repository's revision, not in the paper", *_COMMON_DEVIATIONS),
        torchvision="squeezenet1_1",
    ),
    spec=SPECS["squeezenet1_1"],
)

register_model(
    SqueezeNet,
    ModelInfo.row(
        _SQUEEZENET,
        name="squeezenet1_0_bypass",
        params=1_248_424,
        description=(
            "SqueezeNet v1.0 with the paper's simple bypass (§6): the input of fire3, fire5, fire7 and fire9 (whose "
            "in and out channels match) is added to its output, ResNet-style. No extra parameters."
        ),
        min_size=21,
        paper_params="1,248,424",
        paper_params_source="Iandola et al. 2016, Table 1; §6/Table 3: the simple bypass adds no parameters (4.8 MB)",
        results=(
            PaperResult("top1_error_pct", 39.6, _VAL, "Iandola et al. 2016, Table 3 (60.4% top-1)"),
            PaperResult("top5_error_pct", 17.5, _VAL, "Iandola et al. 2016, Table 3 (82.5% top-5)"),
        ),
        deviations=_COMMON_DEVIATIONS,
    ),
    spec=SPECS["squeezenet1_0_bypass"],
)
