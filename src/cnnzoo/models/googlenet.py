"""GoogLeNet (Inception v1): Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (arXiv:1409.4842).

    name          what                                                       params (1000 classes)
    googlenet     the paper's network: true 5x5 branches, LRN in the stem,   13,378,280 with the two aux heads
                  conv biases, no batch norm, dropout 0.4, aux heads on      (6,998,552 main head only)
    googlenet_tv  torchvision's layout (BN eps 1e-3, 3x3 "5x5" branch,       6,624,904 (aux heads off by default;
                  2x2 last max pool); loads torchvision state dicts          13,004,888 with aux_logits=True)

Training-mode output (aux heads on): ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``, a named tuple in
torchvision's order, so code written for torchvision's GoogLeNet works unchanged: ``aux_logits2`` is the head on
inception (4d), ``aux_logits1`` the head on (4a). The paper weights each aux loss by 0.3 (§5). In eval mode, or with
``aux_logits=False``, forward returns the logits alone.

The Inception module (§4, Fig. 2) has four parallel branches over the same input, concatenated along channels:

    branch1: 1x1 conv                                        (#1x1)
    branch2: 1x1 conv (#3x3 reduce) -> 3x3 conv              (#3x3)
    branch3: 1x1 conv (#5x5 reduce) -> 5x5 conv              (#5x5)
    branch4: 3x3/1 max pool -> 1x1 conv (pool proj)

``InceptionModule(..., naive=True)`` builds Fig. 2(a), the version without dimension reductions: the three
convolutions see the full input and the pooling branch is passed through unprojected, so the output depth is
``ch1x1 + ch3x3 + ch5x5 + in_channels`` and can only grow from module to module (the lecture's example: 28x28x256 in,
28x28x672 out, 854M MACs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from ..layers.conv import ConvReLU
from ..layers.init import caffe_xavier_
from ..layers.norm import LocalResponseNorm
from ..registry import ModelInfo, PaperResult, register_model

PAPER = (
    "Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke, Rabinovich. Going Deeper with Convolutions. "
    "CVPR 2015 (arXiv:1409.4842)"
)


class BasicConv2d(nn.Module):
    """torchvision's GoogLeNet unit: conv (no bias) -> BN (eps 1e-3, from the TF port) -> ReLU, with its key names."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


ConvBlock = Callable[..., nn.Module]  # called as conv_block(in_channels, out_channels, kernel_size, padding=...)


class InceptionModule(nn.Module):
    """One Inception module. Arguments follow the columns of Szegedy et al. Table 1.

    The submodule names (``branch1`` .. ``branch4``) are torchvision's, so a torchvision-compatible GoogLeNet built
    from this block loads torchvision state dicts unchanged.

    Args:
        ch3x3_reduce, ch5x5_reduce, pool_proj: the 1x1 reductions; ``None`` (and only ``None``) with ``naive=True``.
        naive: Fig. 2(a), no reductions and no pool projection.
        conv_block: conv -> (norm) -> ReLU unit; the paper's is conv with bias -> ReLU (``ConvReLU``).
        ch5x5_kernel_size: 5 in the paper; torchvision's GoogLeNet uses 3 here (its documented "known bug",
            pytorch/vision#906), which its torchvision-compatible variant reproduces.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3_reduce: int | None,
        ch3x3: int,
        ch5x5_reduce: int | None,
        ch5x5: int,
        pool_proj: int | None,
        *,
        naive: bool = False,
        conv_block: ConvBlock = ConvReLU,
        ch5x5_kernel_size: int = 5,
    ) -> None:
        super().__init__()
        reductions = (ch3x3_reduce, ch5x5_reduce, pool_proj)
        if naive and any(r is not None for r in reductions):
            raise ValueError("the naive Inception module has no 1x1 reductions and no pool projection: pass None")
        if not naive and any(r is None for r in reductions):
            raise ValueError("ch3x3_reduce, ch5x5_reduce and pool_proj are required unless naive=True")
        k5 = ch5x5_kernel_size
        self.naive = naive
        self.branch1 = conv_block(in_channels, ch1x1, 1)
        # §4: the pooling path is 3x3 max pooling with stride 1 (padding 1 keeps the spatial size for the concat)
        pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        if naive:  # Fig. 2(a)
            self.branch2 = conv_block(in_channels, ch3x3, 3, padding=1)
            self.branch3 = conv_block(in_channels, ch5x5, k5, padding=k5 // 2)
            self.branch4 = pool
            self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels
        else:  # Fig. 2(b): 1x1 convolutions "compute reductions before the expensive 3x3 and 5x5 convolutions"
            self.branch2 = nn.Sequential(
                conv_block(in_channels, ch3x3_reduce, 1), conv_block(ch3x3_reduce, ch3x3, 3, padding=1)
            )
            self.branch3 = nn.Sequential(
                conv_block(in_channels, ch5x5_reduce, 1), conv_block(ch5x5_reduce, ch5x5, k5, padding=k5 // 2)
            )
            self.branch4 = nn.Sequential(pool, conv_block(in_channels, pool_proj, 1))
            self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class InceptionAux(nn.Module):
    """§5 auxiliary classifier: 5x5/3 average pool -> 1x1 conv 128 + ReLU -> FC 1024 + ReLU -> dropout 0.7 -> FC."""

    def __init__(
        self, in_channels: int, num_classes: int, *, pool: nn.Module, conv_block: ConvBlock, dropout: float
    ) -> None:
        super().__init__()
        self.pool = pool  # -> 4x4 (§5: "4x4x512 output for the (4a), and 4x4x528 for the (4d) stage")
        self.conv = conv_block(in_channels, 128, 1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x))
        x = self.relu(self.fc1(self.flatten(x)))
        return self.fc2(self.dropout(x))


@dataclass(frozen=True)
class InceptionSpec:
    """One Inception row of Szegedy et al. Table 1, in the table's column order."""

    name: str
    ch1x1: int
    ch3x3_reduce: int
    ch3x3: int
    ch5x5_reduce: int
    ch5x5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        return self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj


# Szegedy et al. 2015, Table 1 (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj); max pool 3x3/2 after 3b, 4e
TABLE1: tuple[InceptionSpec, ...] = (
    InceptionSpec("3a", 64, 96, 128, 16, 32, 32),  # 28x28x256
    InceptionSpec("3b", 128, 128, 192, 32, 96, 64),  # 28x28x480
    InceptionSpec("4a", 192, 96, 208, 16, 48, 64),  # 14x14x512
    InceptionSpec("4b", 160, 112, 224, 24, 64, 64),  # 14x14x512
    InceptionSpec("4c", 128, 128, 256, 24, 64, 64),  # 14x14x512
    InceptionSpec("4d", 112, 144, 288, 32, 64, 64),  # 14x14x528
    InceptionSpec("4e", 256, 160, 320, 32, 128, 128),  # 14x14x832
    InceptionSpec("5a", 256, 160, 320, 32, 128, 128),  # 7x7x832
    InceptionSpec("5b", 384, 192, 384, 48, 128, 128),  # 7x7x1024
)


class GoogLeNetOutputs(NamedTuple):
    """Training-mode outputs, in torchvision's order."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor  # head on inception (4d)
    aux_logits1: torch.Tensor  # head on inception (4a)


class GoogLeNet(nn.Module):
    """GoogLeNet as Table 1 lays it out: stem -> inception (3a, 3b) -> pool -> (4a..4e) -> pool -> (5a, 5b) -> head.

    Args:
        aux_logits: build the two auxiliary heads (§5); they run in training mode only.
        dropout: before the final FC (Table 1: 40%). aux_dropout: in the aux heads (§5: 70%).
        torchvision_layout: torchvision's ``googlenet`` instead of the paper's (see Deviations).
        transform_input: torchvision's input re-normalisation, which its pretrained weights expect.

    Deviations (paper layout): the final 7x7/1 average pool is ``AdaptiveAvgPool2d(1)`` and each aux head's 5x5/3
    average pool is preceded by ``AdaptiveAvgPool2d(14)``; both are the identity at the paper's 224x224 input (the maps
    there are 7x7 and 14x14) and let the net run on smaller inputs. The paper gives no init: the BVLC Caffe
    replication's is used (Caffe "xavier" = uniform with variance 1/fan_in, biases 0.2, classifier biases 0).
    LRN constants are also Caffe's (bvlc_googlenet: size 5, alpha 1e-4, beta 0.75, k 1, in Caffe's averaging
    convention, which is PyTorch's).

    ``torchvision_layout=True`` reproduces torchvision (pytorch/vision#906): BN (eps 1e-3) and no conv biases, no LRN,
    3x3 kernels in the "5x5" branch, a 2x2/2 last max pool, ``AdaptiveAvgPool2d(4)`` in the aux heads, truncated
    normal init (std 0.01).
    """

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = True,
        dropout: float = 0.4,
        aux_dropout: float = 0.7,
        torchvision_layout: bool = False,
        transform_input: bool = False,
    ) -> None:
        super().__init__()
        if transform_input and in_channels != 3:
            raise ValueError("transform_input re-normalises the 3 ImageNet colour channels; it needs in_channels=3")
        tv = torchvision_layout
        conv_block = BasicConv2d if tv else ConvReLU
        self.aux_logits = aux_logits
        self.transform_input = transform_input

        # stem, Table 1 rows 1-5 (Caffe bvlc_googlenet puts LRN after pool1 and after conv2/3x3)
        self.conv1 = conv_block(in_channels, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = nn.Identity() if tv else LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv2 = conv_block(64, 64, 1)  # "#3x3 reduce"
        self.conv3 = conv_block(64, 192, 3, padding=1)
        self.lrn2 = nn.Identity() if tv else LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)

        channels = 192
        for spec in TABLE1:
            module = InceptionModule(
                channels, spec.ch1x1, spec.ch3x3_reduce, spec.ch3x3, spec.ch5x5_reduce, spec.ch5x5, spec.pool_proj,
                conv_block=conv_block, ch5x5_kernel_size=3 if tv else 5,
            )
            self.add_module(f"inception{spec.name}", module)
            channels = spec.out_channels
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True) if tv else nn.MaxPool2d(3, stride=2, ceil_mode=True)

        if aux_logits:

            def aux_pool() -> nn.Module:
                if tv:
                    return nn.AdaptiveAvgPool2d(4)
                return nn.Sequential(nn.AdaptiveAvgPool2d(14), nn.AvgPool2d(5, stride=3))

            self.aux1 = InceptionAux(512, num_classes, pool=aux_pool(), conv_block=conv_block, dropout=aux_dropout)
            self.aux2 = InceptionAux(528, num_classes, pool=aux_pool(), conv_block=conv_block, dropout=aux_dropout)
        else:
            self.aux1 = self.aux2 = None

        # head: avg pool 7x7/1 -> dropout (40%) -> linear
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights(tv)

    def _init_weights(self, tv: bool) -> None:
        classifiers = {self.fc} | ({self.aux1.fc2, self.aux2.fc2} if self.aux_logits else set())
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                if tv:
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                else:
                    caffe_xavier_(m.weight)
                if m.bias is not None and not tv:  # torchvision leaves its FC biases at PyTorch's default
                    nn.init.constant_(m.bias, 0.0 if m in classifiers else 0.2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        # torchvision: ImageNet-normalised input -> the [-1, 1] scaling its TF-ported weights were trained on
        mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return x * (std / 0.5) + (mean - 0.5) / 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        if self.transform_input:
            x = self._transform(x)
        x = self.maxpool1(self.conv1(x))
        x = self.lrn1(x)
        x = self.conv3(self.conv2(x))
        x = self.maxpool2(self.lrn2(x))
        x = self.inception3b(self.inception3a(x))
        x = self.maxpool3(x)
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(self.flatten(self.avgpool(x))))
        if aux1 is None:
            return x
        return GoogLeNetOutputs(x, aux2, aux1)


def _build(*, num_classes: int, in_channels: int, **kwargs) -> GoogLeNet:
    return GoogLeNet(num_classes=num_classes, in_channels=in_channels, **kwargs)


def _from_torchvision(state: dict) -> dict:
    """torchvision's keys are already ours; drop its aux heads when the model was built without them."""
    return {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}


# the fields every GoogLeNet row shares
_GOOGLENET = dict(family="googlenet", paper=PAPER, input_size=(3, 224, 224), num_classes=1000, recipe="googlenet")

register_model(
    _build,
    ModelInfo.row(
        _GOOGLENET,
        name="googlenet",
        params=13_378_280,  # 6,998,552 main head + 3,188,840 (aux on 4a) + 3,190,888 (aux on 4d)
        description=(
            "GoogLeNet (Inception v1), 22 layers: stem (7x7/2 conv, LRN, 1x1 + 3x3 convs, LRN), nine Inception "
            "modules (parallel 1x1 / 3x3 / 5x5 convs with 1x1 reductions, and a pooled branch), global average "
            "pooling, dropout 0.4, one FC; two auxiliary classifiers on 4a and 4d during training: train mode returns "
            "(logits, aux_logits2 [4d], aux_logits1 [4a]), torchvision's order; 6,998,552 params with aux_logits=False"
        ),
        min_size=31,  # below it the 3x3/2 max pool after 4e gets a 1x1 map
        comparable_params=6_998_552,
        comparable_params_note="without the two auxiliary heads, aux_logits=False: the network Table 1 counts",
        paper_params="6.8M",
        paper_params_source="Szegedy et al. 2015, Table 1 params column (main network, ~6.8M as usually quoted)",
        paper_params_verified=False,
        paper_macs="1.5G",
        paper_macs_source="Szegedy et al. 2015, §1: 'a computational budget of 1.5 billion multiply-adds'",
        results=(
            PaperResult("top5_error_pct", 6.67, "ILSVRC-2014 test, 7 models x 144 crops",
                        "Szegedy et al. 2015, Table 2", verified=False),
            PaperResult("top5_error_pct", 10.07, "ILSVRC-2014 val, 1 model, 1 crop", "Szegedy et al. 2015, Table 3",
                        verified=False),
        ),
        deviations=(
            "final 7x7 average pool is AdaptiveAvgPool2d(1), and AdaptiveAvgPool2d(14) precedes each aux head's "
            "5x5/3 pool: the identity at 224x224, lets the net run from 31x31",
            "init and LRN constants from the BVLC Caffe replication (the paper states neither)",
        ),
        aux_outputs=2,
    ),
)

register_model(
    _build,
    ModelInfo.row(
        _GOOGLENET,
        name="googlenet_tv",
        params=6_624_904,  # aux_logits=True adds 6,379,984 (13,004,888)
        description=(
            "torchvision's GoogLeNet: batch norm after every conv, 3x3 kernels in the '5x5' branch, no LRN, "
            "dropout 0.2; loads torchvision state dicts (aux heads off by default, aux_logits=True builds them)"
        ),
        min_size=15,  # as torchvision's meta
        paper_macs="1.498G",
        paper_macs_source="torchvision GoogLeNet_Weights.IMAGENET1K_V1 meta _ops (= conv+fc MACs)",
        deviations=(
            "batch norm (eps 1e-3) after every conv, no conv biases, no LRN (torchvision/TF-slim port)",
            "the '5x5' branch uses 3x3 kernels (torchvision's documented bug, pytorch/vision#906)",
            "last max pool 2x2/2 instead of 3x3/2; aux heads pool with AdaptiveAvgPool2d(4) instead of 5x5/3",
            "dropout 0.2 instead of 0.4; aux heads off by default",
            "transform_input=True is needed for torchvision's pretrained weights (default False, as torchvision "
            "without weights)",
        ),
        torchvision="googlenet",
    ),
    torchvision_key_map=_from_torchvision,
    torchvision_layout=True,
    aux_logits=False,
    dropout=0.2,
)
