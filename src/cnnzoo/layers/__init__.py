"""Blocks shared by several families. Each lives in one place and is imported, never copied."""

from .conv import BasicConv2d, ConvReLU
# the module cnnzoo.layers.drop_path also holds the functional drop_path(); it is not re-exported, so that the
# package attribute stays the module
from .drop_path import DropPath, StochasticDepth, drop_path_modules, drop_path_schedule
from .dense import DenseBlock, DenseLayer, Transition
from .fractal import FractalBlock, FractalConv, Join
from .inception import InceptionModule
from .inception_aux import InceptionAux
from .init import caffe_xavier_, init_he_
from .norm import LocalResponseNorm, paper_lrn
from .residual import BasicBlock, Bottleneck, PreActBlock, PreActBottleneck, make_stage
from .shortcut import ZeroPadShortcut, make_shortcut

__all__ = [
    "BasicBlock",
    "BasicConv2d",
    "Bottleneck",
    "ConvReLU",
    "DenseBlock",
    "DenseLayer",
    "DropPath",
    "FractalBlock",
    "FractalConv",
    "InceptionAux",
    "InceptionModule",
    "Join",
    "LocalResponseNorm",
    "PreActBlock",
    "PreActBottleneck",
    "StochasticDepth",
    "Transition",
    "ZeroPadShortcut",
    "caffe_xavier_",
    "drop_path_modules",
    "drop_path_schedule",
    "init_he_",
    "make_shortcut",
    "make_stage",
    "paper_lrn",
]
