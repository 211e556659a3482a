"""VGG: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015.

All six ConvNet configurations of the paper's Table 1, and torchvision's batch-norm versions of A, B, D and E:

    name        Table 1 column   weight layers   params (1000 classes)   torchvision
    vgg11       A                11              132,863,336             vgg11
    vgg11_lrn   A-LRN            11              132,863,336             -
    vgg13       B                13              133,047,848             vgg13
    vgg16_c     C                16              133,638,952             -
    vgg16       D                16              138,357,544             vgg16
    vgg19       E                19              143,667,240             vgg19
    vggNN_bn    A/B/D/E + BN     11-19           +2 x (sum of conv widths)  vggNN_bn

State-dict keys are torchvision's (``features.N``, ``classifier.N``), so torchvision's VGG weights load directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..layers import paper_lrn
from ..registry import ModelInfo, PaperResult, register_model

PAPER = (
    "Simonyan, Zisserman. Very Deep Convolutional Networks for Large-Scale Image Recognition. "
    "ICLR 2015 (arXiv:1409.1556)"
)


@dataclass(frozen=True)
class VGGConfig:
    """One column of Simonyan & Zisserman Table 1, read top to bottom.

    ``layers`` uses the table's own notation: ``conv<kernel>-<channels>`` (stride 1, padding keeps the size, §2.1),
    ``LRN`` (Krizhevsky et al. 2012's local response normalisation, §2.1) and ``maxpool`` (2x2, stride 2, §2.1).
    Every column ends in FC-4096, FC-4096, FC-1000 and soft-max.
    """

    column: str
    layers: tuple[str, ...]

    @property
    def weight_layers(self) -> int:
        return sum(layer.startswith("conv") for layer in self.layers) + 3


def _column(column: str, layers: str) -> VGGConfig:
    return VGGConfig(column, tuple(layers.split()))


# Simonyan & Zisserman 2015, Table 1 ("ConvNet configurations (shown in columns)")
CONFIGS: dict[str, VGGConfig] = {
    "A": _column("A", """conv3-64 maxpool  conv3-128 maxpool  conv3-256 conv3-256 maxpool
                         conv3-512 conv3-512 maxpool  conv3-512 conv3-512 maxpool"""),
    "A-LRN": _column("A-LRN", """conv3-64 LRN maxpool  conv3-128 maxpool  conv3-256 conv3-256 maxpool
                                 conv3-512 conv3-512 maxpool  conv3-512 conv3-512 maxpool"""),
    "B": _column("B", """conv3-64 conv3-64 maxpool  conv3-128 conv3-128 maxpool  conv3-256 conv3-256 maxpool
                         conv3-512 conv3-512 maxpool  conv3-512 conv3-512 maxpool"""),
    # C: B plus a 1x1 conv as the last conv of stages 3-5 ("a linear transformation of the input channels
    # followed by non-linearity", §2.3)
    "C": _column("C", """conv3-64 conv3-64 maxpool  conv3-128 conv3-128 maxpool
                         conv3-256 conv3-256 conv1-256 maxpool  conv3-512 conv3-512 conv1-512 maxpool
                         conv3-512 conv3-512 conv1-512 maxpool"""),
    "D": _column("D", """conv3-64 conv3-64 maxpool  conv3-128 conv3-128 maxpool
                         conv3-256 conv3-256 conv3-256 maxpool  conv3-512 conv3-512 conv3-512 maxpool
                         conv3-512 conv3-512 conv3-512 maxpool"""),
    "E": _column("E", """conv3-64 conv3-64 maxpool  conv3-128 conv3-128 maxpool
                         conv3-256 conv3-256 conv3-256 conv3-256 maxpool
                         conv3-512 conv3-512 conv3-512 conv3-512 maxpool
                         conv3-512 conv3-512 conv3-512 conv3-512 maxpool"""),
}


class VGG(nn.Module):
    """A VGG configuration: ``features`` (the conv stack of Table 1), ``avgpool``, ``classifier`` (fc6, fc7, fc8).

    Args:
        batch_norm: batch norm after every conv (torchvision's ``vggNN_bn``; not in the paper).
        dropout: on fc6 and fc7 (§3.1: 0.5).
        init: ``"glorot"`` (§3.1: "it is possible to initialise the weights without pre-training by using the
            random initialisation procedure of Glorot & Bengio (2010)") or ``"normal"``, the procedure config A
            was trained with (§3.1: zero-mean normal, "10^-2 variance", read here as std 1e-2, torchvision's and
            Caffe's reading; zero biases). The paper initialised the deeper configs from a trained A.

    Deviations:
        ``AdaptiveAvgPool2d((7, 7))`` before fc6, as torchvision: the identity at the paper's 224x224 crops (the
        last max pool already gives 7x7); at other sizes it pools or repeats to 7x7 (min input 32x32).
        Forward is the single-crop classifier; the paper's dense evaluation (§3.2: fc layers converted to 7x7 and
        1x1 convs over the uncropped image, scores averaged spatially) is not the default.
    """

    def __init__(
        self,
        config: VGGConfig,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        dropout: float = 0.5,
        init: Literal["glorot", "normal"] = "glorot",
    ) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels = in_channels
        for layer in config.layers:
            if layer == "maxpool":
                layers.append(nn.MaxPool2d(2, stride=2))
            elif layer == "LRN":
                # §2.1: "the parameters for the LRN layer are those of (Krizhevsky et al., 2012)"
                layers.append(paper_lrn(size=5, alpha=1e-4, beta=0.75, k=2.0))
            else:
                kernel_size, width = (int(v) for v in layer.removeprefix("conv").split("-"))
                layers.append(nn.Conv2d(channels, width, kernel_size, padding=kernel_size // 2))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU(inplace=True))
                channels = width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, 4096),  # fc6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),  # fc7
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),  # fc8
        )
        self._init_weights(init)

    def _init_weights(self, init: str) -> None:
        if init not in ("glorot", "normal"):
            raise ValueError(f"init must be 'glorot' or 'normal', not {init!r}")
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                if init == "glorot":
                    nn.init.xavier_uniform_(m.weight)
                else:
                    nn.init.normal_(m.weight, mean=0.0, std=1e-2)
                nn.init.zeros_(m.bias)  # §3.1: "The biases were initialised with zero."

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = self.flatten(x)
        return self.classifier(x)


def _build(*, config: str, num_classes: int, in_channels: int, **kwargs) -> VGG:
    return VGG(CONFIGS[config], num_classes=num_classes, in_channels=in_channels, **kwargs)


_DEVIATIONS = (
    "AdaptiveAvgPool2d((7, 7)) before fc6 (torchvision's): the identity at the paper's 224x224 input; lets the net "
    "run from 32x32 up",
    "forward is the single-crop classifier; the paper's dense evaluation (fc layers as convolutions over the whole "
    "image, §3.2) is not the default",
    "Glorot init by default (§3.1 says it works without pre-training); the paper initialised B-E from a trained A "
    "(init='normal' gives A's N(0, 0.01^2))",
)
_BN = ("batch norm after every conv (torchvision's _bn variants; Ioffe & Szegedy 2015, not in the VGG paper)",)
_SZ = "Simonyan & Zisserman 2015"
_TABLE3 = "ILSVRC-2012 val, single scale, train S in [256;512], Q=384"
_TABLE4 = "ILSVRC-2012 val, multi-scale test Q={S-32,S,S+32}, S in [256;512]"
_TABLE5 = "ILSVRC-2012 val, dense + multi-crop, S in [256;512]"


def _unverified(metric: str, value: float, dataset: str, table: str) -> PaperResult:
    """A figure of the paper's tables, quoted from secondary sources and not yet checked against the table."""
    return PaperResult(metric, value, dataset, f"{_SZ}, {table}", verified=False)


@dataclass(frozen=True)
class _ConfigRow:
    """One column of the paper's Table 1 (configurations A-E)."""

    paper_params: str  # Table 2, in millions as printed (not yet checked against the table: `paper_params_verified`)
    tv_macs: str | None  # torchvision weights meta "_ops" (= conv+fc GMACs at 224); None: no torchvision model
    results: tuple[PaperResult, ...] = ()


@dataclass(frozen=True)
class _Variant:
    config: str  # Table 1 column
    params: int  # exact, this build at 1000 classes
    torchvision: str | None  # the torchvision builder whose weights it loads
    batch_norm: bool = False


_CONFIG_ROWS: dict[str, _ConfigRow] = {
    "A": _ConfigRow("133M", tv_macs="7.609G"),
    "A-LRN": _ConfigRow("133M", tv_macs="7.609G"),  # LRN adds no MACs
    "B": _ConfigRow("133M", tv_macs="11.308G"),
    "C": _ConfigRow("134M", tv_macs=None),
    "D": _ConfigRow(
        "138M",
        tv_macs="15.47G",
        results=(
            _unverified("top1_error_pct", 25.6, _TABLE3, "Table 3"),
            _unverified("top5_error_pct", 8.1, _TABLE3, "Table 3"),
            _unverified("top1_error_pct", 24.8, _TABLE4, "Table 4"),
            _unverified("top5_error_pct", 7.5, _TABLE4, "Table 4"),
            _unverified("top5_error_pct", 7.4, "ILSVRC-2012 test", "table not identified"),
            _unverified("top1_error_pct", 24.4, _TABLE5, "Table 5"),
            _unverified("top5_error_pct", 7.2, _TABLE5, "Table 5"),
        ),
    ),
    "E": _ConfigRow(
        "144M",
        tv_macs="19.632G",
        results=(
            _unverified("top1_error_pct", 24.8, _TABLE4, "Table 4"),
            _unverified("top5_error_pct", 7.5, _TABLE4, "Table 4"),
            _unverified("top1_error_pct", 24.4, _TABLE5, "Table 5"),
            _unverified("top5_error_pct", 7.1, _TABLE5, "Table 5"),
        ),
    ),
}
_VARIANTS: dict[str, _Variant] = {
    "vgg11": _Variant("A", 132_863_336, torchvision="vgg11"),
    "vgg11_lrn": _Variant("A-LRN", 132_863_336, torchvision=None),  # LRN has no parameters
    "vgg13": _Variant("B", 133_047_848, torchvision="vgg13"),
    "vgg16_c": _Variant("C", 133_638_952, torchvision=None),
    "vgg16": _Variant("D", 138_357_544, torchvision="vgg16"),
    "vgg19": _Variant("E", 143_667_240, torchvision="vgg19"),
    "vgg11_bn": _Variant("A", 132_868_840, torchvision="vgg11_bn", batch_norm=True),
    "vgg13_bn": _Variant("B", 133_053_736, torchvision="vgg13_bn", batch_norm=True),
    "vgg16_bn": _Variant("D", 138_365_992, torchvision="vgg16_bn", batch_norm=True),
    "vgg19_bn": _Variant("E", 143_678_248, torchvision="vgg19_bn", batch_norm=True),
}

# the fields every VGG row shares
_VGG = dict(family="vgg", paper=PAPER, input_size=(3, 224, 224), num_classes=1000, min_size=32, recipe="vgg")

for _name, _variant in _VARIANTS.items():
    _config, _bn = _variant.config, _variant.batch_norm
    _row, _cfg = _CONFIG_ROWS[_config], CONFIGS[_config]
    _macs_from = "vgg11" if _config == "A-LRN" else _variant.torchvision
    register_model(
        _build,
        ModelInfo.row(
            _VGG,
            name=_name,
            params=_variant.params,
            description=(
                f"VGG config {_config} ({_cfg.weight_layers} weight layers"
                + (", batch norm" if _bn else "")
                + "): stacks of 3x3 convs (stride 1, pad 1) and 2x2 max pools, widths 64-128-256-512-512, "
                "then fc 4096-4096-1000 with dropout 0.5"
                + ("; LRN after the first conv" if _config == "A-LRN" else "")
                + ("; a 1x1 conv ends stages 3-5" if _config == "C" else "")
            ),
            paper_params=None if _bn else _row.paper_params,
            paper_params_source=None if _bn else f"{_SZ}, Table 2 (millions)",
            paper_params_verified=False,
            paper_macs=_row.tv_macs,
            paper_macs_source=None
            if _row.tv_macs is None
            else f"torchvision {_macs_from} weights meta _ops (= conv+fc MACs)",
            results=() if _bn else _row.results,
            deviations=_DEVIATIONS + (_BN if _bn else ()),
            torchvision=_variant.torchvision,
        ),
        config=_config,
        batch_norm=_bn,
    )
