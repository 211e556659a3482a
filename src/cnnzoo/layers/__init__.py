"""Blocks shared by several families: conv units, the papers' LRN and inits, the residual blocks with their
shortcuts, and drop path. Each lives in one place and is imported, never copied; a block one family alone uses lives
in that family's file (`cnnzoo.models`)."""

from .conv import ConvReLU
# the module cnnzoo.layers.drop_path also holds the functional drop_path(); it is not re-exported, so that the
# package attribute stays the module
from .drop_path import DropPath, StochasticDepth, drop_path_modules, drop_path_schedule
from .init import caffe_xavier_, init_he_
from .norm import LocalResponseNorm, paper_lrn
from .residual import (
    BasicBlock,
    Bottleneck,
    PreActBlock,
    PreActBottleneck,
    ZeroPadShortcut,
    make_shortcut,
    make_stage,
)

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ConvReLU",
    "DropPath",
    "LocalResponseNorm",
    "PreActBlock",
    "PreActBottleneck",
    "StochasticDepth",
    "ZeroPadShortcut",
    "caffe_xavier_",
    "drop_path_modules",
    "drop_path_schedule",
    "init_he_",
    "make_shortcut",
    "make_stage",
    "paper_lrn",
]
