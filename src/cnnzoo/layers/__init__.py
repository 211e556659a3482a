"""Blocks shared by several families. Each lives in one place and is imported, never copied."""

from .conv import ConvBNReLU, ConvReLU
# the module cnnzoo.layers.drop_path also holds the functional drop_path(); it is not re-exported, so that the
# package attribute stays the module
from .drop_path import DropPath, StochasticDepth, drop_path_modules, drop_path_schedule
from .inception import InceptionModule
from .norm import paper_lrn
from .residual import (
    BasicBlock,
    Bottleneck,
    PreActBlock,
    PreActBottleneck,
    ZeroPadShortcut,
    init_he_,
    make_shortcut,
    make_stage,
)

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ConvBNReLU",
    "ConvReLU",
    "DropPath",
    "InceptionModule",
    "PreActBlock",
    "PreActBottleneck",
    "StochasticDepth",
    "ZeroPadShortcut",
    "drop_path_modules",
    "drop_path_schedule",
    "init_he_",
    "make_shortcut",
    "make_stage",
    "paper_lrn",
]
