"""Deep Networks with Stochastic Depth: Huang, Sun, Liu, Sedra, Weinberger, ECCV 2016.

    name           network                                                              params (classes)
    resnet110_sd   CIFAR ResNet-110 (He et al. §4.2), stochastic depth p_L = 0.5        1,727,962 (10)
    resnet152_sd   ImageNet ResNet-152 (He et al. Table 1, v1), stochastic depth 0.5    60,192,808 (1000)

Training rule (§3, the authors' ``main.lua`` / ``ResidualDrop.lua``): before each mini-batch, residual block l
(l = 1..L) is kept with probability p_l = 1 - l/L (1 - p_L) (eq. 4, ``deathRate = i/#blocks * 0.5``); a dropped block
passes its shortcut only (one draw for the whole batch) and is not run at all: no forward, no backward, no batch-norm
statistics update, as ``ResidualDrop.lua`` skips it. That is where the paper's training speed-up comes from (about
25% less time for ResNet-110 with p_L = 0.5: the expected number of blocks run is sum p_l = 0.75 L - 0.25). At test
time every branch is multiplied by its p_l (eq. 5). That is `cnnzoo.layers.drop_path.StochasticDepth`, selected by
``drop_path_mode="batch"``; ``drop_path_rate`` is 1 - p_L = 0.5. There is no new block: these are the ResNets of
`cnnzoo.models.resnet` with that option on (`ResNet.skips_layers` then says so).

Transition shortcuts of the CIFAR net follow ``ResidualDrop.lua``: 2x2 average pooling with stride 2, then zero
channels appended (``A_avg``), where He et al. subsample (option A). The ImageNet code is not in the authors'
repository; resnet152_sd is this library's paper ResNet-152 (projection shortcuts).
"""

from __future__ import annotations

from dataclasses import replace

from ..registry import ModelInfo, PaperResult, register_model
from .resnet import SPECS as RESNET_SPECS
from .resnet import CIFAR_MIN_SIZE, IMAGENET_MIN_SIZE, ResNet, ResNetSpec

PAPER = "Huang, Sun, Liu, Sedra, Weinberger. Deep Networks with Stochastic Depth. ECCV 2016 (arXiv:1603.09382)"
SURVIVAL_PROB_LAST = 0.5  # p_L of the linear decay rule (§4; README: main.lua -deathRate 0.5)

SPECS: dict[str, ResNetSpec] = {
    "resnet110_sd": replace(RESNET_SPECS["resnet110"], shortcut="A_avg"),
    "resnet152_sd": RESNET_SPECS["resnet152"],
}


_README = "yueatsprograms/Stochastic_Depth README (Fig. 3)"
_SHARED_DEVIATIONS = (
    "none in the arithmetic: a dropped block is not run (no forward, backward or batch-norm update), and the "
    "trainer keeps its gradients at zero rather than None, so momentum and weight decay apply to it as in the "
    "Torch code's flat gradient",
)

# the fields every Stochastic Depth row shares
_STOCHASTIC_DEPTH = dict(family="stochastic_depth", paper=PAPER)

register_model(
    ResNet,
    ModelInfo.row(
        _STOCHASTIC_DEPTH,
        name="resnet110_sd",
        input_size=(3, 32, 32),
        num_classes=10,
        params=1_727_962,
        description="CIFAR ResNet-110 trained with stochastic depth: 54 residual blocks, survival probability "
        "decaying linearly to p_L = 0.5, whole-batch drops, test-time scaling; 2x2-average zero-padded transitions",
        min_size=CIFAR_MIN_SIZE,
        paper_params="1.7M",
        paper_params_source="He et al. 2016, Table 6 (the same ResNet-110)",
        results=(
            PaperResult("top1_error_pct", 5.25, "CIFAR-10 test (+aug), best-validation epoch", _README),
            PaperResult("top1_error_pct", 6.41, "CIFAR-10 test (+aug), constant depth baseline", _README),
        ),
        deviations=_SHARED_DEVIATIONS
        + (
            "no conv biases (the authors' convs have them, redundant before batch norm: +4,048 parameters, "
            "1,732,010 in all)",
        ),
        recipe="stochastic_depth_cifar",
    ),
    spec=SPECS["resnet110_sd"],
    drop_path_rate=1.0 - SURVIVAL_PROB_LAST,
    drop_path_mode="batch",
)

register_model(
    ResNet,
    ModelInfo.row(
        _STOCHASTIC_DEPTH,
        name="resnet152_sd",
        input_size=(3, 224, 224),
        num_classes=1000,
        params=60_192_808,
        description="ImageNet ResNet-152 (v1, projection shortcuts) with stochastic depth: 50 bottleneck blocks, "
        "p_L = 0.5, whole-batch drops, test-time scaling",
        min_size=IMAGENET_MIN_SIZE,
        deviations=_SHARED_DEVIATIONS
        + ("block layout is this library's paper ResNet-152; the authors' ImageNet code is not released",),
        recipe="resnet_imagenet",
    ),
    spec=SPECS["resnet152_sd"],
    drop_path_rate=1.0 - SURVIVAL_PROB_LAST,
    drop_path_mode="batch",
)
