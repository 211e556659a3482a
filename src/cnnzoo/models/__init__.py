"""The families: importing this package registers every network (each module registers its names on import)."""

from . import (  # noqa: F401  (imported for their registrations)
    alexnet,
    densenet,
    fractalnet,
    googlenet,
    nin,
    preact_resnet,
    resnet,
    resnext,
    squeezenet,
    stochastic_depth,
    vgg,
    wide_resnet,
    zfnet,
)
