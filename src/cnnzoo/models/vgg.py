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


def _results(*rows: tuple[str, float, str, str]) -> tuple[PaperResult, ...]:
    return tuple(PaperResult(metric, value, dataset, source) for metric, value, dataset, source in rows)


_DEVIATIONS = (
    "AdaptiveAvgPool2d((7, 7)) before fc6 (torchvision's): the identity at the paper's 224x224 input; lets the net "
    "run from 32x32 up",
    "forward is the single-crop classifier; the paper's dense evaluation (fc layers as convolutions over the whole "
    "image, §3.2) is not the default",
    "Glorot init by default (§3.1 says it works without pre-training); the paper initialised B-E from a trained A "
    "(init='normal' gives A's N(0, 0.01^2))",
)
_BN = ("batch norm after every conv (torchvision's _bn variants; Ioffe & Szegedy 2015, not in the VGG paper)",)
_R = "[R: recalled in architectures.md §1.3, not re-verified]"
_TABLE4 = "ILSVRC-2012 val, multi-scale test Q={S-32,S,S+32}, S in [256;512]"
_TABLE5 = "ILSVRC-2012 val, dense + multi-crop, S in [256;512]"
# (config, paper's Table 2 params in millions, torchvision _ops = MACs in G, results)
_PAPER: dict[str, tuple[float, float | None, tuple[PaperResult, ...]]] = {
    "A": (133e6, 7.609e9, ()),
    "A-LRN": (133e6, 7.609e9, ()),
    "B": (133e6, 11.308e9, ()),
    "C": (134e6, None, ()),
    "D": (
        138e6,
        15.47e9,
        _results(
            ("top1_error_pct", 25.6, "ILSVRC-2012 val, single scale, train S in [256;512], Q=384",
             f"Simonyan & Zisserman 2015, Table 3 {_R}"),
            ("top5_error_pct", 8.1, "ILSVRC-2012 val, single scale, train S in [256;512], Q=384",
             f"Simonyan & Zisserman 2015, Table 3 {_R}"),
            ("top1_error_pct", 24.8, _TABLE4, f"Simonyan & Zisserman 2015, Table 4 {_R}"),
            ("top5_error_pct", 7.5, _TABLE4,
             "Simonyan & Zisserman 2015, Table 4 [R; VGG16's 7.5% val top-5 also in a Packt excerpt, V]"),
            ("top5_error_pct", 7.4, "ILSVRC-2012 test",
             "Simonyan & Zisserman 2015, as quoted in a Packt excerpt [V: no table number given]"),
            ("top1_error_pct", 24.4, _TABLE5, f"Simonyan & Zisserman 2015, Table 5 {_R}"),
            ("top5_error_pct", 7.2, _TABLE5, f"Simonyan & Zisserman 2015, Table 5 {_R}"),
        ),
    ),
    "E": (
        144e6,
        19.632e9,
        _results(
            ("top1_error_pct", 24.8, _TABLE4, f"Simonyan & Zisserman 2015, Table 4 {_R}"),
            ("top5_error_pct", 7.5, _TABLE4, f"Simonyan & Zisserman 2015, Table 4 {_R}"),
            ("top1_error_pct", 24.4, _TABLE5, f"Simonyan & Zisserman 2015, Table 5 {_R}"),
            ("top5_error_pct", 7.1, _TABLE5, f"Simonyan & Zisserman 2015, Table 5 {_R}"),
        ),
    ),
}

# name -> (config, batch_norm, exact params at 1000 classes, torchvision builder)
_VARIANTS: dict[str, tuple[str, bool, int, str | None]] = {
    "vgg11": ("A", False, 132_863_336, "vgg11"),
    "vgg11_lrn": ("A-LRN", False, 132_863_336, None),  # LRN has no parameters
    "vgg13": ("B", False, 133_047_848, "vgg13"),
    "vgg16_c": ("C", False, 133_638_952, None),
    "vgg16": ("D", False, 138_357_544, "vgg16"),
    "vgg19": ("E", False, 143_667_240, "vgg19"),
    "vgg11_bn": ("A", True, 132_868_840, "vgg11_bn"),
    "vgg13_bn": ("B", True, 133_053_736, "vgg13_bn"),
    "vgg16_bn": ("D", True, 138_365_992, "vgg16_bn"),
    "vgg19_bn": ("E", True, 143_678_248, "vgg19_bn"),
}

for _name, (_config, _bn, _params, _tv) in _VARIANTS.items():
    _paper_params, _macs, _paper_results = _PAPER[_config]
    _cfg = CONFIGS[_config]
    register_model(
        _build,
        ModelInfo(
            name=_name,
            family="vgg",
            paper=PAPER,
            input_size=(3, 224, 224),
            num_classes=1000,
            params=_params,
            description=(
                f"VGG config {_config} ({_cfg.weight_layers} weight layers"
                + (", batch norm" if _bn else "")
                + "): stacks of 3x3 convs (stride 1, pad 1) and 2x2 max pools, widths 64-128-256-512-512, "
                "then fc 4096-4096-1000 with dropout 0.5"
                + ("; LRN after the first conv" if _config == "A-LRN" else "")
                + ("; a 1x1 conv ends stages 3-5" if _config == "C" else "")
            ),
            min_size=32,
            paper_params=None if _bn else _paper_params,
            paper_params_source=None if _bn else "Simonyan & Zisserman 2015, Table 2 (millions) [R]",
            paper_macs=_macs,
            paper_macs_source=(
                None if _macs is None
                else f"torchvision {'vgg11' if _config == 'A-LRN' else _tv} weights meta _ops (= conv+fc MACs"
                + ("; LRN adds none)" if _config == "A-LRN" else ")")
            ),
            results=() if _bn else _paper_results,
            deviations=_DEVIATIONS + (_BN if _bn else ()),
            torchvision=_tv,
            recipe="vgg",
            slow=True,
            tags=("imagenet", "torchvision-compatible") if _tv else ("imagenet",),
        ),
        config=_config,
        batch_norm=_bn,
    )
