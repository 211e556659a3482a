"""AlexNet: Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", NIPS 2012.

| name             | what                                                                            | params     |
|------------------|---------------------------------------------------------------------------------|------------|
| `alexnet`        | the paper / CS231n network: 227x227, 96-256-384-384-256, conv2/4/5 in 2 groups  | 60,965,224 |
| `alexnet_1tower` | the lecture's simplified single-tower table (no groups)                         | 62,378,344 |
| `alexnet_tv`     | torchvision's "one weird trick" net (Krizhevsky 2014); torchvision keys          | 61,100,840 |

Layer order. The paper puts LRN after the ReLU of conv1 and conv2 (§3.3: "we applied this normalization after
applying the ReLU nonlinearity in certain layers") and the max-pools after the LRN layers (§3.5: "Max-pooling layers
... follow both response-normalization layers as well as the fifth convolutional layer"); BVLC's `bvlc_alexnet`
prototxt uses the same conv -> ReLU -> LRN -> pool order. The CS231n table lists POOL1 before NORM1, which is the
CaffeNet (`bvlc_reference_caffenet`) order. We follow the paper. LRN has no parameters, so the counts are the same in
both orders; only where the normalisation runs (55x55 vs 27x27 maps) differs.

Initialisation (paper §5, the default, ``paper_init=True``): every weight ~ N(0, 0.01); biases 1 in conv2, conv4,
conv5 and the hidden fully connected layers (fc6, fc7), 0 elsewhere. ``paper_init=False`` keeps PyTorch's defaults
(BVLC's replication found that biases of 1 gave a flat loss and used 0.1). `alexnet_tv` always keeps PyTorch's
defaults, as torchvision does.

The `AlexNet` class interprets an `AlexNetSpec`; ZFNet (zfnet.py) reuses it with its own spec. Modules are named as
torchvision names them (`features`, `avgpool`, `classifier`), so torchvision state dicts load into `alexnet_tv`
without a key map.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..layers import paper_lrn
from ..registry import ModelInfo, PaperResult, register_model


@dataclass(frozen=True)
class ConvLayer:
    """One convolutional layer of an AlexNet-style net, with what follows its ReLU."""

    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    groups: int = 1  # 2 = the paper's two-GPU split (§3.2): a kernel sees only the maps on its own GPU
    lrn: bool = False  # local response normalisation after the ReLU (§3.3)
    pool: bool = False  # 3x3 stride-2 max-pool: overlapping pooling (§3.4)
    pool_padding: int = 0
    bias_init: float = 0.0  # paper init (§5): 1 for conv2, conv4 and conv5


@dataclass(frozen=True)
class AlexNetSpec:
    convs: tuple[ConvLayer, ...]
    fc_features: tuple[int, ...] = (4096, 4096)  # fc6, fc7
    final_size: int = 6  # side of the last pooled map: fc6 sees C x 6 x 6
    lrn_after_pool: bool = False  # Zeiler & Fergus Fig. 3: pool, then contrast normalisation
    adaptive_pool: bool = False  # torchvision: AdaptiveAvgPool2d((6, 6)), so any input >= 63 px works
    dropout_before_fc: bool = False  # torchvision: Dropout -> Linear -> ReLU; the paper: Linear -> ReLU -> Dropout
    weight_std: float | None = 0.01  # paper init (§5): N(0, 0.01); None: no paper init (PyTorch defaults)
    fc_bias_init: float = 1.0  # paper init (§5): biases 1 in the hidden fully connected layers


SPECS: dict[str, AlexNetSpec] = {
    # Krizhevsky et al. 2012 §3.5 and Fig. 2; paddings and the 227 input from bvlc_alexnet / CS231n.
    # 227 -> conv1 55 -> pool 27 -> conv2 27 -> pool 13 -> conv3/4/5 13 -> pool 6
    "alexnet": AlexNetSpec(
        convs=(
            ConvLayer(96, 11, stride=4, lrn=True, pool=True),  # conv1: each GPU sees the whole image
            ConvLayer(256, 5, padding=2, groups=2, lrn=True, pool=True, bias_init=1.0),
            ConvLayer(384, 3, padding=1),  # conv3: "connected to all kernel maps in the second layer"
            ConvLayer(384, 3, padding=1, groups=2, bias_init=1.0),
            ConvLayer(256, 3, padding=1, groups=2, pool=True, bias_init=1.0),
        )
    ),
    # CS231n lecture 9, "Full (simplified) AlexNet architecture": the same layers in one tower.
    "alexnet_1tower": AlexNetSpec(
        convs=(
            ConvLayer(96, 11, stride=4, lrn=True, pool=True),
            ConvLayer(256, 5, padding=2, lrn=True, pool=True, bias_init=1.0),
            ConvLayer(384, 3, padding=1),
            ConvLayer(384, 3, padding=1, bias_init=1.0),
            ConvLayer(256, 3, padding=1, pool=True, bias_init=1.0),
        )
    ),
    # Krizhevsky 2014 ("One weird trick"), as torchvision builds it from cuda-convnet2's layers-imagenet-1gpu.cfg:
    # 64-192-384-256-256 (the paper text says 384 for conv4), conv1 pad 2 for 224 inputs, no LRN, no groups.
    "alexnet_tv": AlexNetSpec(
        convs=(
            ConvLayer(64, 11, stride=4, padding=2, pool=True),
            ConvLayer(192, 5, padding=2, pool=True),
            ConvLayer(384, 3, padding=1),
            ConvLayer(256, 3, padding=1),
            ConvLayer(256, 3, padding=1, pool=True),
        ),
        adaptive_pool=True,
        dropout_before_fc=True,
        weight_std=None,
    ),
}


class AlexNet(nn.Module):
    """AlexNet-style net: five conv layers (ReLU, optional LRN and overlapping max-pool) and three FC layers.

    Args:
        spec: the layer table (`SPECS`).
        dropout: dropout probability on fc6 and fc7 (paper §4.2: 0.5).
        paper_init: the paper's N(0, 0.01) weights and 0/1 biases (§5); False keeps PyTorch's default init.

    Deviations: see each registered variant's ``ModelInfo.deviations``.
    """

    def __init__(
        self,
        spec: AlexNetSpec,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.5,
        paper_init: bool = True,
    ) -> None:
        super().__init__()
        self.final_size = None if spec.adaptive_pool else spec.final_size
        layers: list[nn.Module] = []
        channels = in_channels
        for conv in spec.convs:
            layers += [
                nn.Conv2d(channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, groups=conv.groups),
                nn.ReLU(inplace=True),
            ]
            pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=conv.pool_padding) if conv.pool else None
            norm = paper_lrn() if conv.lrn else None
            order = (pool, norm) if spec.lrn_after_pool else (norm, pool)
            layers += [m for m in order if m is not None]
            channels = conv.out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((spec.final_size, spec.final_size)) if spec.adaptive_pool else nn.Identity()
        self.flatten = nn.Flatten()

        widths = (channels * spec.final_size**2, *spec.fc_features)
        head: list[nn.Module] = []
        for fc_in, fc_out in zip(widths, widths[1:]):
            fc = [nn.Linear(fc_in, fc_out), nn.ReLU(inplace=True)]
            drop = nn.Dropout(p=dropout)
            head += [drop, *fc] if spec.dropout_before_fc else [*fc, drop]
        self.classifier = nn.Sequential(*head, nn.Linear(widths[-1], num_classes))

        if paper_init and spec.weight_std is not None:
            self._paper_init(spec)

    def _paper_init(self, spec: AlexNetSpec) -> None:
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        fcs = [m for m in self.classifier if isinstance(m, nn.Linear)]
        bias_inits = [c.bias_init for c in spec.convs] + [spec.fc_bias_init] * len(spec.fc_features) + [0.0]
        for layer, bias in zip(convs + fcs, bias_inits, strict=True):
            nn.init.normal_(layer.weight, mean=0.0, std=spec.weight_std)
            nn.init.constant_(layer.bias, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)  # conv1..conv5, with ReLU, LRN and overlapping max-pools
        if self.final_size is not None and x.shape[-2:] != (self.final_size, self.final_size):
            raise ValueError(
                f"{type(self).__name__} needs an input whose last map is {self.final_size}x{self.final_size} "
                f"(got {tuple(x.shape[-2:])}); see model_info(...).input_size"
            )
        x = self.avgpool(x)
        x = self.flatten(x)
        return self.classifier(x)  # fc6, fc7 (dropout), fc8


PAPER = (
    "Krizhevsky, Sutskever, Hinton. ImageNet Classification with Deep Convolutional Neural Networks. NIPS 2012"
)
_TABLE2 = "Krizhevsky et al. 2012, Table 2"
_PAPER_RESULTS = (
    PaperResult("top1_error_pct", 37.5, "ILSVRC-2010 test", "Krizhevsky et al. 2012, Table 1 / abstract"),
    PaperResult("top5_error_pct", 17.0, "ILSVRC-2010 test", "Krizhevsky et al. 2012, Table 1 / abstract"),
    PaperResult("top1_error_pct", 40.7, "ILSVRC-2012 val, 1 CNN", _TABLE2),
    PaperResult("top5_error_pct", 18.2, "ILSVRC-2012 val, 1 CNN", _TABLE2),
    PaperResult("top5_error_pct", 16.4, "ILSVRC-2012 test, 5-CNN ensemble", _TABLE2),
    PaperResult("top5_error_pct", 15.3, "ILSVRC-2012 test, 7-CNN ensemble (2 pre-trained on Fall-2011)", _TABLE2),
)
# 224 cannot give Fig. 2's 55x55 conv1 maps; sides 227-258 give the 6x6 map fc6 needs, others raise a clear error
_INPUT_227 = "227x227 input, not the text's 224 (CS231n and bvlc_alexnet use 227: 224 cannot give 55x55 conv1 maps)"

# the fields every AlexNet row shares
_ALEXNET = dict(
    family="alexnet", paper=PAPER, input_size=(3, 227, 227), num_classes=1000, min_size=227, recipe="alexnet"
)

register_model(
    AlexNet,
    ModelInfo.row(
        _ALEXNET,
        name="alexnet",
        params=60_965_224,
        description=(
            "The ILSVRC-2012 winner as the paper and CS231n describe it: conv1 96@11x11/4 -> 55x55x96 (34,944 params), "
            "LRN, overlapping 3x3/2 max-pools, conv2/4/5 split in two groups (the two-GPU scheme), fc6/fc7 4096 with "
            "dropout 0.5, fc8 1000. Paper init (N(0, 0.01), biases 1 in conv2/4/5, fc6, fc7) by default."
        ),
        paper_params="60M",
        paper_params_source="Krizhevsky et al. 2012, abstract ('60 million parameters')",
        results=_PAPER_RESULTS,
        deviations=(
            _INPUT_227,
            "the two-GPU split is groups=2 convolutions on one device (same function and parameters)",
            # on two GPUs each half was normalised over its own 48 / 128 maps: the maps next to the split differ
            "LRN spans all 96 / 256 maps (each GPU normalised only its own half)",
        ),
    ),
    spec=SPECS["alexnet"],
)

register_model(
    AlexNet,
    ModelInfo.row(
        _ALEXNET,
        name="alexnet_1tower",
        params=62_378_344,
        description=(
            "AlexNet as the CS231n 'full (simplified)' table draws it: one tower, so conv2, conv4 and conv5 see all "
            "maps of the layer below (1,413,120 parameters more than the two-group paper net)."
        ),
        paper_params="60M",
        paper_params_source="Krizhevsky et al. 2012, abstract ('60 million parameters', for the two-group net)",
        deviations=(
            "no groups (the lecture's single tower): conv2/4/5 see all maps, +1,413,120 params",
            _INPUT_227,
        ),
    ),
    spec=SPECS["alexnet_1tower"],
)

register_model(
    AlexNet,
    ModelInfo.row(
        _ALEXNET,
        name="alexnet_tv",
        paper=(
            "Krizhevsky. One weird trick for parallelizing convolutional neural networks. arXiv:1404.5997, 2014 "
            "(torchvision's `alexnet`)"
        ),
        input_size=(3, 224, 224),
        params=61_100_840,
        description=(
            "torchvision's AlexNet: the single-tower 'one weird trick' net (64-192-384-256-256, no LRN, no groups) "
            "with an adaptive 6x6 average pool. Same state-dict keys as torchvision.models.alexnet."
        ),
        min_size=63,
        paper_params="61,100,840",
        paper_params_source="torchvision AlexNet_Weights.IMAGENET1K_V1 meta num_params",
        paper_macs="0.714G",
        paper_macs_source="torchvision AlexNet_Weights.IMAGENET1K_V1 meta _ops (GMACs at 224x224)",
        results=(
            PaperResult("top1_error_pct", 43.478, "ImageNet-1k val, 224 centre crop", "torchvision (acc@1 56.522)"),
            PaperResult("top5_error_pct", 20.934, "ImageNet-1k val, 224 centre crop", "torchvision (acc@5 79.066)"),
        ),
        deviations=(
            # cuda-convnet2's layers-imagenet-1gpu.cfg; the 2014 paper's text says 384 for conv4
            "not the 2012 network: 64-192-384-256-256, no LRN, no groups",
            "conv1 pad 2 and an adaptive 6x6 average pool (inputs >= 63 px)",
            "dropout before fc6/fc7 (Dropout -> Linear -> ReLU), as torchvision",
            "PyTorch default initialisation, as torchvision",
        ),
        torchvision="alexnet",
    ),
    spec=SPECS["alexnet_tv"],
)
