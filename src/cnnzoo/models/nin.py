"""Network in Network: Lin, Chen, Yan, ICLR 2014 (arXiv:1312.4400).

| name           | what                                                                  | params                    |
|----------------|-----------------------------------------------------------------------|---------------------------|
| `nin_cifar`    | 3 mlpconv layers (192-160-96 / 192-192-192 / 192-192-10), GAP, 3x32x32 | 966,986 (10 classes)      |
| `nin_imagenet` | 4 mlpconv layers (96 / 256 / 384 / 1024-1024-1000), GAP, 3x224x224     | 7,595,176 (1000 classes)  |

An mlpconv layer (§3.1, Fig. 1) is a k x k convolution followed by two 1x1 convolutions ("cascaded cross channel
parametric pooling"), each with a ReLU. The classifier is global average pooling over the last mlpconv's maps, one
map per class (§3.2): there is no fully connected layer. Dropout goes between mlpconv layers (§4.1).

The paper has no channel table. The layouts are those of the authors' public Caffe models: the CIFAR-10 model as
mirrored in szagoruyko/wide-residual-networks `models/nin.lua` (whose own changes, BN / no dropout / a linear head,
we do not copy) and the Caffe model-zoo ImageNet model (BVLC model zoo, "NIN-Imagenet"). As in those models, pooling
uses Caffe's ceil rounding (32 -> 16 -> 8 on CIFAR; 54 -> 27 -> 13 -> 6 on ImageNet) and the class maps pass through a
ReLU before the average. The global average is `AdaptiveAvgPool2d(1)`: equal to the public models' 8x8 (CIFAR)
and 6x6 (ImageNet) average at their input sizes, and valid at other sizes.

Initialisation: PyTorch's defaults; the paper gives no scheme.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from ..layers import ConvReLU
from ..registry import ModelInfo, PaperResult, register_model


class MlpConv(nn.Sequential):
    """k x k conv -> ReLU -> 1x1 conv -> ReLU -> 1x1 conv -> ReLU: a conv layer with a small MLP (Lin et al. §3.1)."""

    def __init__(
        self, in_channels: int, channels: tuple[int, int, int], kernel_size: int, *, stride: int = 1, padding: int = 0
    ) -> None:
        super().__init__(
            ConvReLU(in_channels, channels[0], kernel_size, stride=stride, padding=padding),
            ConvReLU(channels[0], channels[1], 1),  # the MLP's hidden layer, shared over positions
            ConvReLU(channels[1], channels[2], 1),
        )


@dataclass(frozen=True)
class MlpConvLayer:
    """One row of a NiN layout: an mlpconv layer and what follows it."""

    channels: tuple[int, int, int]  # k x k conv, then the two 1x1 convs; the last layer's last width = num_classes
    kernel_size: int
    stride: int = 1
    padding: int = 0
    pool: Literal["max", "avg"] | None = None  # 3x3 stride-2 pool, ceil rounding (Caffe)
    dropout: bool = False  # dropout (p=0.5) after this layer, i.e. before the next mlpconv (§4.1)


SPECS: dict[str, tuple[MlpConvLayer, ...]] = {
    # The public CIFAR-10 model (cifar10 NiN; szagoruyko/wide-residual-networks models/nin.lua): 32 -> 16 -> 8
    "nin_cifar": (
        MlpConvLayer((192, 160, 96), 5, padding=2, pool="max", dropout=True),
        MlpConvLayer((192, 192, 192), 5, padding=2, pool="avg", dropout=True),
        MlpConvLayer((192, 192, 10), 3, padding=1),  # 10 class maps -> global average
    ),
    # The Caffe model-zoo ImageNet NiN: 224 -> 54 -> 27 -> 13 -> 6
    "nin_imagenet": (
        MlpConvLayer((96, 96, 96), 11, stride=4, pool="max"),
        MlpConvLayer((256, 256, 256), 5, padding=2, pool="max"),
        MlpConvLayer((384, 384, 384), 3, padding=1, pool="max", dropout=True),
        MlpConvLayer((1024, 1024, 1000), 3, padding=1),  # 1000 class maps -> global average
    ),
}


class NiN(nn.Module):
    """Network in Network: stacked mlpconv layers and a global-average-pooling classifier (no Linear layer).

    Args:
        layers: the layout (`SPECS`); the last row's last width is replaced by ``num_classes``.
        dropout: dropout probability between mlpconv layers (0.5 in the public models).
    """

    def __init__(
        self,
        layers: tuple[MlpConvLayer, ...],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        for index, layer in enumerate(layers, start=1):
            widths = layer.channels if index < len(layers) else (*layer.channels[:2], num_classes)
            stages[f"mlpconv{index}"] = MlpConv(
                channels, widths, layer.kernel_size, stride=layer.stride, padding=layer.padding
            )
            if layer.pool == "max":
                stages[f"pool{index}"] = nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)
            elif layer.pool == "avg":
                stages[f"pool{index}"] = nn.AvgPool2d(kernel_size=3, stride=2, ceil_mode=True)
            if layer.dropout:
                stages[f"dropout{index}"] = nn.Dropout(p=dropout)
            channels = widths[-1]
        self.stages = nn.Sequential(stages)
        # §3.2: the average of each class map is that class's score
        self.head = nn.Sequential(OrderedDict(global_avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten()))

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(x)  # mlpconv -> pool -> dropout, ..., last mlpconv emits one map per class
        return self.head(x)


PAPER = "Lin, Chen, Yan. Network In Network. ICLR 2014 (arXiv:1312.4400)"
_LAYOUT = "layout from the authors' public Caffe model (the paper has no channel table)"

# the fields every NiN row shares
_NIN = dict(family="nin", paper=PAPER, recipe="nin")

register_model(
    NiN,
    ModelInfo.row(
        _NIN,
        name="nin_cifar",
        input_size=(3, 32, 32),
        num_classes=10,
        params=966_986,
        description=(
            "NiN for CIFAR-10: three mlpconv layers (5x5 192-160-96, 5x5 192-192-192, 3x3 192-192-10) with max/avg "
            "3x3/2 pooling and dropout 0.5 between them; each of the 10 final maps is averaged into a class score."
        ),
        min_size=4,
        results=(
            PaperResult("top1_error_pct", 10.41, "CIFAR-10 test, no augmentation", "Lin et al. 2014, Table 1"),
            PaperResult("top1_error_pct", 8.81, "CIFAR-10 test, translation + flip", "Lin et al. 2014, Table 1"),
            PaperResult("top1_error_pct", 35.68, "CIFAR-100 test", "Lin et al. 2014, Table 2"),
        ),
        deviations=(_LAYOUT, "PyTorch default initialisation (the paper gives none)"),
    ),
    layers=SPECS["nin_cifar"],
)

register_model(
    NiN,
    ModelInfo.row(
        _NIN,
        name="nin_imagenet",
        input_size=(3, 224, 224),
        num_classes=1000,
        params=7_595_176,
        description=(
            "NiN for ImageNet (Caffe model zoo): mlpconv layers 11x11/4 96-96-96, 5x5 256-256-256, 3x3 384-384-384 "
            "(then dropout 0.5), 3x3 1024-1024-1000, each followed by 3x3/2 max-pooling except the last; "
            "global average pooling of the 1000 class maps."
        ),
        min_size=39,
        deviations=(
            "layout from the Caffe model zoo: the paper reports no ImageNet model",
            "PyTorch default initialisation (the paper gives none)",
        ),
    ),
    layers=SPECS["nin_imagenet"],
)
