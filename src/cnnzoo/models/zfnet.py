"""ZFNet: Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014 (arXiv:1311.2901).

| name                 | what                                                                     | params      |
|----------------------|--------------------------------------------------------------------------|-------------|
| `zfnet`              | Fig. 3: conv1 7x7/2, conv2 stride 2, dense (ungrouped) 96-256-384-384-256 | 62,357,608  |
| `zfnet_512_1024_512` | the same with 512-1024-512 filters in conv3/4/5 (CS231n's "ZFNet")        | 107,627,624 |

ZFNet is "AlexNet but" (CS231n): the `AlexNet` class from alexnet.py interprets a ZFNet spec.

Paddings. Fig. 3 gives the map sizes 224 -> 110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 6 but no paddings. conv1 pad 1,
pool1 pad 1, conv2 pad 0, pool2 pad 1, conv3-5 pad 1 and pool3 pad 0 reproduce every size (the
tests check each one).

Order and normalisation. Fig. 3's caption has layers 1 and 2 rectified, max-pooled (3x3, stride 2) and then contrast
normalised across feature maps. The paper gives no constants for that normalisation; we use AlexNet's LRN (k=2, n=5,
alpha=1e-4, beta=0.75) via `paper_lrn`.

Initialisation (§3, the default): weights N(0, 0.01), biases 0. The paper's renormalisation of conv filters whose RMS
exceeds 0.1 is a training-time rule and is not part of the model.
"""

from __future__ import annotations

from ..registry import ModelInfo, PaperResult, register_model
from .alexnet import AlexNet, AlexNetSpec, ConvLayer


class ZFNet(AlexNet):
    """Zeiler & Fergus 2014, Fig. 3: AlexNet with a 7x7/2 first layer, stride-2 conv2 and dense layers 3-5."""


def _zfnet_spec(conv3: int, conv4: int, conv5: int) -> AlexNetSpec:
    # Zeiler & Fergus Fig. 3 (224 input); paddings chosen to reproduce its 110/55/26/13/6 maps (module docstring).
    return AlexNetSpec(
        convs=(
            ConvLayer(96, 7, stride=2, padding=1, lrn=True, pool=True, pool_padding=1),  # 224 -> 110 -> 55
            ConvLayer(256, 5, stride=2, padding=0, lrn=True, pool=True, pool_padding=1),  # 55 -> 26 -> 13
            ConvLayer(conv3, 3, padding=1),  # 13
            ConvLayer(conv4, 3, padding=1),  # 13
            ConvLayer(conv5, 3, padding=1, pool=True),  # 13 -> 6
        ),
        lrn_after_pool=True,  # Fig. 3: max pooled, then contrast normalised
        fc_bias_init=0.0,  # §3: biases 0
    )


SPECS: dict[str, AlexNetSpec] = {
    "zfnet": _zfnet_spec(384, 384, 256),  # Fig. 3
    "zfnet_512_1024_512": _zfnet_spec(512, 1024, 512),  # the paper's wider model; CS231n lecture 9
}

_TABLE2 = "Zeiler & Fergus, arXiv:1311.2901 Table 2"
PAPER = "Zeiler, Fergus. Visualizing and Understanding Convolutional Networks. ECCV 2014 (arXiv:1311.2901)"
_DEVIATIONS = (
    # conv1 1, pool1 1, conv2 0, pool2 1, conv3-5 1, pool3 0
    "paddings not in the paper: chosen to reproduce Fig. 3's 110/55/26/13/6 maps",
    "contrast normalisation uses AlexNet's LRN constants (the paper gives none)",
    "filter-RMS renormalisation to 0.1 (§3) is left to training",
    # any side from 213 to 244 gives the 6x6 map fc6 needs; other sizes raise a clear error
    "fixed-size input: 224 (213-244 px accepted)",
)

# the fields every ZFNet row shares
_ZFNET = dict(
    family="zfnet",
    paper=PAPER,
    input_size=(3, 224, 224),
    num_classes=1000,
    min_size=213,
    deviations=_DEVIATIONS,
    recipe="zfnet",
)

register_model(
    ZFNet,
    ModelInfo.row(
        _ZFNET,
        name="zfnet",
        params=62_357_608,
        description=(
            "ILSVRC-2013's ZFNet (Fig. 3): AlexNet with conv1 7x7/2 (224 -> 110), conv2 5x5/2, dense conv3-5 "
            "(384-384-256) on one GPU, pool-then-normalise in layers 1-2, fc6/fc7 4096 with dropout 0.5."
        ),
        results=(
            PaperResult("top1_error_pct", 38.3, "ILSVRC-2012 val, 1 convnet", _TABLE2),
            PaperResult("top5_error_pct", 16.4, "ILSVRC-2012 val, 1 convnet", _TABLE2),
            PaperResult("top5_error_pct", 16.5, "ILSVRC-2012 test, 1 convnet", _TABLE2),
            PaperResult("top5_error_pct", 15.3, "ILSVRC-2012 test, 5 convnets", _TABLE2),
        ),
    ),
    spec=SPECS["zfnet"],
)

register_model(
    ZFNet,
    ModelInfo.row(
        _ZFNET,
        name="zfnet_512_1024_512",
        params=107_627_624,
        description=(
            "CS231n's ZFNet: Fig. 3 with 512, 1024 and 512 filters in conv3/4/5 (the paper's wider single model). "
            "The lecture's 11.7% top-5 is the Clarifai ILSVRC-2013 entry, not a number of this paper."
        ),
    ),
    spec=SPECS["zfnet_512_1024_512"],
)
