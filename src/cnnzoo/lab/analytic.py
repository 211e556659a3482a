"""The lab's analytic experiments: claims about cost and size, measured by the analyzer in seconds, at any scale.

- ``inception-cost``: the naive Inception module of the lecture against the same module with 1x1 bottlenecks;
- ``vgg-memory``: where VGG16's activations and parameters are, per layer (the lecture's table);
- ``squeeze``: SqueezeNet 1.0 against AlexNet: parameters, model file size, multiply-adds;
- :func:`filter_stack`: the analytic half of ``small-filters`` (three 3x3 convolutions against one 7x7).

Each network is built with ``torch.nn`` layers or ``cnnzoo.create_model`` and measured with ``cnnzoo.analyze``.
"""

from __future__ import annotations

import tempfile
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..analysis import analyze
from ..registry import create_model, model_info
from .experiment import Experiment, Outcome
from .runner import Lab
from .verdict import Check

# --- small-filters, analytic half ------------------------------------------------------------------------------

FILTER_CHANNELS = 64  # C of the lecture's "3 * (3^2 C^2) vs. 7^2 C^2"
FILTER_SIDE = 56  # any side gives the same ratios; VGG's conv3 stage works at 56x56


def filter_stack(kernel: int, count: int, channels: int) -> nn.Sequential:
    """``count`` x (conv ``kernel`` x ``kernel``, stride 1, same padding, no bias; ReLU) at ``channels`` channels:
    the lecture counts weights without biases."""
    layers: list[nn.Module] = []
    for _ in range(count):
        layers += [nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _stack_numbers(net: nn.Module, channels: int, side: int) -> dict[str, int]:
    report = analyze(net, (channels, side, side), training=False)
    rf = report.receptive_field
    return {"params": report.totals.params, "macs": report.totals.macs,
            "relus": sum(layer.kind == "ReLU" for layer in report.layers),
            "receptive_field": int(max(rf.size)) if rf is not None else 0}


def filter_stack_checks(channels: int = FILTER_CHANNELS, side: int = FILTER_SIDE) -> tuple[list[Check], dict]:
    """Simonyan & Zisserman §2.3 measured: receptive field, weights (27C^2 vs 49C^2), multiply-adds, ReLUs."""
    stack = _stack_numbers(filter_stack(3, 3, channels), channels, side)
    single = _stack_numbers(filter_stack(7, 1, channels), channels, side)
    c2 = channels * channels
    checks = [
        Check("same receptive field", "three stacked 3x3 convolutions see exactly what one 7x7 sees",
              stack["receptive_field"] == single["receptive_field"] == 7,
              f"receptive field {stack['receptive_field']} px (3 x 3x3) vs {single['receptive_field']} px (7x7)"),
        Check("fewer parameters", f"weights are exactly 27C^2 against 49C^2 (C={channels}), no biases",
              stack["params"] == 27 * c2 and single["params"] == 49 * c2 and stack["params"] < single["params"],
              f"{stack['params']:,} = 27C^2 vs {single['params']:,} = 49C^2 weights "
              f"({stack['params'] / single['params']:.3f}x)"),
        Check("fewer multiply-adds", "multiply-adds are 27C^2HW against 49C^2HW",
              stack["macs"] == 27 * c2 * side * side and single["macs"] == 49 * c2 * side * side,
              f"{stack['macs']:,} vs {single['macs']:,} MACs at {side}x{side}"),
        Check("more non-linearities", "the stack has three ReLUs where the 7x7 has one",
              stack["relus"] == 3 and single["relus"] == 1, f"{stack['relus']} vs {single['relus']} ReLUs"),
    ]
    return checks, {"channels": channels, "side": side, "stack": stack, "single": single}


# --- inception-cost --------------------------------------------------------------------------------------------

INCEPTION_INPUT = (256, 28, 28)  # the lecture's example: a 28x28x256 input
LECTURE_NAIVE_MACS = 854_196_224  # "Total: 854M ops": 28x28x128x1x1x256 + 28x28x192x3x3x256 + 28x28x96x5x5x256
LECTURE_NAIVE_DEPTH = 672  # 128 + 192 + 96 + 256 (the pool keeps the input's depth)


class NaiveInception(nn.Module):
    """The lecture's naive module: 1x1 conv 128, 3x3 conv 192, 5x5 conv 96 and a 3x3 max pool, concatenated."""

    def __init__(self, in_channels: int = 256) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(in_channels, 128, 1, bias=False)
        self.conv3x3 = nn.Conv2d(in_channels, 192, 3, padding=1, bias=False)
        self.conv5x5 = nn.Conv2d(in_channels, 96, 5, padding=2, bias=False)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv1x1(x), self.conv3x3(x), self.conv5x5(x), self.pool(x)], 1)


class BottleneckInception(nn.Module):
    """The same module with 1x1 "bottleneck" convolutions (the lecture's and Szegedy et al. Fig. 2b): 64-channel
    1x1 reductions before the 3x3 and the 5x5, and a 64-channel 1x1 projection after the pool."""

    def __init__(self, in_channels: int = 256) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(in_channels, 128, 1, bias=False)
        self.reduce3x3 = nn.Conv2d(in_channels, 64, 1, bias=False)
        self.conv3x3 = nn.Conv2d(64, 192, 3, padding=1, bias=False)
        self.reduce5x5 = nn.Conv2d(in_channels, 64, 1, bias=False)
        self.conv5x5 = nn.Conv2d(64, 96, 5, padding=2, bias=False)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.pool_proj = nn.Conv2d(in_channels, 64, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv1x1(x), self.conv3x3(self.reduce3x3(x)), self.conv5x5(self.reduce5x5(x)),
                          self.pool_proj(self.pool(x))], 1)


def _module_numbers(name: str, net: nn.Module) -> dict[str, Any]:
    report = analyze(net, INCEPTION_INPUT, training=False)
    convs = [{"name": layer.name, "macs": layer.macs} for layer in report.layers if layer.kind == "Conv2d"]
    return {"name": name, "macs": report.totals.macs, "depth": report.layers[-1].out_shape[0], "convs": convs,
            "params": report.totals.params}


def run_inception_cost(lab: Lab, name: str) -> Outcome:
    naive = _module_numbers("naive", NaiveInception())
    bottleneck = _module_numbers("with 1x1 bottlenecks", BottleneckInception())
    factor = naive["macs"] / bottleneck["macs"]
    checks = [
        Check("the lecture's naive cost", f"the naive module costs exactly {LECTURE_NAIVE_MACS:,} multiply-adds and "
              f"outputs depth {LECTURE_NAIVE_DEPTH}",
              naive["macs"] == LECTURE_NAIVE_MACS and naive["depth"] == LECTURE_NAIVE_DEPTH,
              f"naive module {naive['macs']:,} MACs, output depth {naive['depth']}"),
        Check("bottlenecks cut it", "the bottleneck module needs fewer multiply-adds and a smaller output depth",
              bottleneck["macs"] < naive["macs"] and bottleneck["depth"] < naive["depth"],
              f"bottleneck module {bottleneck['macs']:,} MACs ({factor:.2f}x fewer), output depth "
              f"{bottleneck['depth']}"),
    ]
    protocol = ("Both modules built from torch.nn layers on the lecture's 28x28x256 input, convolutions without "
                "biases (the lecture counts multiplies), measured with cnnzoo.analyze: multiply-adds of every "
                "convolution (the max pool's comparisons are not multiply-adds) and the concatenated depth.")
    return Outcome(protocol, checks, {"modules": [naive, bottleneck], "input": list(INCEPTION_INPUT)})


INCEPTION_COST = Experiment(
    name="inception-cost",
    title="Inception: the naive module against 1x1 bottlenecks",
    claim="A naive Inception module (1x1, 3x3 and 5x5 convolutions and a pool, concatenated) on a 28x28x256 input "
          "costs 854M multiply-adds and can only grow in depth (672); 1x1 'bottleneck' convolutions that reduce the "
          "depth first cut the cost several times.",
    source="Szegedy et al. 2015, 'Going deeper with convolutions', §4 and Fig. 2; CS231n lecture 9 (GoogLeNet, "
           "'Total: 854M ops')",
    rule="Holds if the naive module's multiply-adds are exactly 854,196,224 with output depth 672, and the "
         "bottleneck module needs fewer multiply-adds and has a smaller depth.",
    trained=False,
    run=run_inception_cost,
)


# --- vgg-memory ------------------------------------------------------------------------------------------------

# CS231n lecture 9, VGG16 table: (H, W, C) of every line and its weights (no biases), INPUT first
LECTURE_VGG16 = (
    ("INPUT", (224, 224, 3), 0),
    ("CONV3-64", (224, 224, 64), 1_728), ("CONV3-64", (224, 224, 64), 36_864), ("POOL2", (112, 112, 64), 0),
    ("CONV3-128", (112, 112, 128), 73_728), ("CONV3-128", (112, 112, 128), 147_456), ("POOL2", (56, 56, 128), 0),
    ("CONV3-256", (56, 56, 256), 294_912), ("CONV3-256", (56, 56, 256), 589_824),
    ("CONV3-256", (56, 56, 256), 589_824), ("POOL2", (28, 28, 256), 0),
    ("CONV3-512", (28, 28, 512), 1_179_648), ("CONV3-512", (28, 28, 512), 2_359_296),
    ("CONV3-512", (28, 28, 512), 2_359_296), ("POOL2", (14, 14, 512), 0),
    ("CONV3-512", (14, 14, 512), 2_359_296), ("CONV3-512", (14, 14, 512), 2_359_296),
    ("CONV3-512", (14, 14, 512), 2_359_296), ("POOL2", (7, 7, 512), 0),
    ("FC", (1, 1, 4096), 102_760_448), ("FC", (1, 1, 4096), 16_777_216), ("FC", (1, 1, 1000), 4_096_000),
)
EARLY_ROWS = 7  # INPUT, conv1_1, conv1_2, pool1, conv2_1, conv2_2, pool2: the first two of five stages
MAJORITY = 0.5


def run_vgg_memory(lab: Lab, name: str) -> Outcome:
    rows = analyze("vgg16", training=False).lecture_rows()
    measured = [(r.label, tuple(r.shape_hwc), r.weights) for r in rows]
    expected = [(label, hwc, weights) for label, hwc, weights in LECTURE_VGG16]
    matches = sum(m == e for m, e in zip(measured, expected))
    memory = [r.memory for r in rows]
    weights = [r.weights for r in rows]
    early = sum(memory[:EARLY_ROWS]) / sum(memory)
    fc = sum(w for r, w in zip(rows, weights) if r.label == "FC") / sum(weights)
    checks = [
        Check("the lecture's table", "every line of the lecture's VGG16 table (shape and weights) is reproduced",
              matches == len(expected) == len(measured),
              f"{matches} of {len(expected)} lines match ({sum(memory):,} values, {sum(weights):,} weights)"),
        Check("memory early", f"the first two stages (conv1-conv2 and their pools, input included) hold more than "
              f"{MAJORITY:.0%} of the activation values", early > MAJORITY,
              f"{early:.1%} of the activation memory in the first {EARLY_ROWS} lines"),
        Check("parameters late", f"the three FC layers hold more than {MAJORITY:.0%} of the weights", fc > MAJORITY,
              f"{fc:.1%} of the weights in the 3 FC layers"),
    ]
    protocol = ("cnnzoo.analyze('vgg16') at 3x224x224 in the lecture's notation (memory = values per image, params "
                "without biases), compared line by line with the lecture's table.")
    table = [{"label": r.label, "shape": list(r.shape_hwc), "memory": r.memory, "params": r.weights} for r in rows]
    return Outcome(protocol, checks, {"rows": table, "early_memory_share": early, "fc_params_share": fc})


VGG_MEMORY = Experiment(
    name="vgg-memory",
    title="VGG16: memory in the early layers, parameters in the fully connected ones",
    claim="In VGG16 most of the activation memory of a forward pass sits in the early convolutional layers, "
          "at full resolution, and most of the parameters sit in the three fully connected layers.",
    source="Simonyan & Zisserman 2015, Table 1 (configuration D); CS231n lecture 9, VGG16 table ('Most memory is "
           "in early CONV, most params are in late FC')",
    rule="Holds if the analyzer reproduces the lecture's table line by line, the first two stages hold more than "
         "half of the activation values, and the FC layers more than half of the weights.",
    trained=False,
    run=run_vgg_memory,
)


# --- squeeze ---------------------------------------------------------------------------------------------------

# Iandola et al. 2016 Table 2: AlexNet 240MB, SqueezeNet 4.8MB ("50x"), both 32-bit. The sizes are given to two
# significant figures, so the ratio they state lies in [235/4.85, 245/4.75].
PAPER_RATIO = (235 / 4.85, 245 / 4.75)


def _size_numbers(name: str, folder: Path) -> dict[str, Any]:
    from safetensors.torch import save_file

    net = create_model(name)
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    data = path.read_bytes()
    path.unlink()
    return {"name": name, "params": model_info(name).params, "file_bytes": len(data),
            "gzip_bytes": len(zlib.compress(data, 6)), "macs": analyze(name, training=False).totals.macs}


def run_squeeze(lab: Lab, name: str) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="cnnzoo-lab-") as tmp:
        alex, squeeze = (_size_numbers(n, Path(tmp)) for n in ("alexnet", "squeezenet1_0"))
    lo, hi = PAPER_RATIO
    params_ratio = alex["params"] / squeeze["params"]
    file_ratio = alex["file_bytes"] / squeeze["file_bytes"]
    checks = [
        Check("50x fewer parameters", f"AlexNet / SqueezeNet parameters lies in the paper's 240MB / 4.8MB at its "
              f"precision: [{lo:.2f}, {hi:.2f}]", lo <= params_ratio <= hi,
              f"{alex['params']:,} vs {squeeze['params']:,} parameters = {params_ratio:.1f}x"),
        Check("50x smaller file", f"the fp32 safetensors files' ratio lies in [{lo:.2f}, {hi:.2f}]",
              lo <= file_ratio <= hi,
              f"{alex['file_bytes'] / 1e6:.1f} MB vs {squeeze['file_bytes'] / 1e6:.2f} MB = {file_ratio:.1f}x "
              f"(gzip: {alex['gzip_bytes'] / 1e6:.1f} vs {squeeze['gzip_bytes'] / 1e6:.2f} MB; MACs "
              f"{alex['macs'] / 1e9:.2f} G vs {squeeze['macs'] / 1e9:.2f} G)"),
    ]
    protocol = ("alexnet and squeezenet1_0 as registered, at their native 227x227 input: exact parameter counts "
                "(cnnzoo.model_info), the size of each freshly initialised fp32 state dict written with safetensors "
                "and of that file under zlib level 6 (gzip's default; untrained weights, general-purpose "
                "compression: not the paper's Deep Compression, whose 510x needs pruning and quantisation), and "
                "multiply-adds from cnnzoo.analyze. The 'AlexNet-level accuracy' half of the claim needs ImageNet "
                "and is not measured here (see `cnnzoo reproduce squeezenet1_0`).")
    return Outcome(protocol, checks, {"alexnet": alex, "squeezenet": squeeze, "params_ratio": params_ratio,
                                      "file_ratio": file_ratio, "paper_ratio_interval": [lo, hi]})


SQUEEZE = Experiment(
    name="squeeze",
    title="SqueezeNet: AlexNet's job with 50x fewer parameters",
    claim="SqueezeNet's Fire modules (1x1 squeeze, then 1x1 and 3x3 expand) reach AlexNet-level accuracy with 50x "
          "fewer parameters: a 4.8MB model against AlexNet's 240MB.",
    source="Iandola et al. 2016, 'SqueezeNet', Table 2 (and abstract)",
    rule="Holds if the parameter ratio and the fp32 file-size ratio both lie in the interval that the paper's "
         "rounded sizes allow, [48.45, 51.58]. File sizes under general-purpose compression and multiply-adds are "
         "reported beside them, not judged.",
    trained=False,
    run=run_squeeze,
)
