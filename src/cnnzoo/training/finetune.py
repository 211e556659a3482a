"""Starting from weights (``--weights FILE``): every tensor that fits is loaded, a classifier of another class count
is new, ``--freeze backbone`` trains the head alone, ``head_lr_mult`` scales the head's learning rate.

``FILE`` is a torchvision state dict (for the ``_tv`` and torchvision-named models: the keys are mapped where cnnzoo's
names differ), a CIFAR ResNet of akamaster/pytorch_resnet_cifar10, a cnnzoo run's weights or checkpoint, or a plain
state dict; it is loaded by :func:`cnnzoo.weights.load_weights` with ``strict=False``. The *head* is the network's
last fully connected layer (the last convolution for the all-convolutional NiN and SqueezeNet): it is what a
different class count replaces, what ``--freeze backbone`` leaves trainable and what ``head_lr_mult`` applies to.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint import WeightsError
from ..errors import UserError
from ..layers.residual import ZeroPadShortcut
from ..models.resnet import torchvision_key_map as resnet_key_map
from ..registry import ModelArgumentError, create_model, model_entry
from ..weights import LoadedWeights, load_weights

FREEZE = ("backbone",)


def start_net(config: Any, net: nn.Module | None, *, num_classes: int, in_channels: int, resumed: bool
              ) -> tuple[nn.Module, list[str]]:
    """The run's network (``create_model`` with the ``--model-arg`` options unless ``net`` is given), its
    ``--weights`` loaded (a fresh run only: a resumed run has its own) and ``--freeze`` applied; and the header
    lines saying what was loaded, what is new and what is frozen."""
    lines = []
    if net is None:
        try:
            net = create_model(config.model, num_classes=num_classes, in_channels=in_channels, **config.model_kwargs)
        except ModelArgumentError:  # one line that names the network already
            raise
        except (ValueError, TypeError) as exc:  # an option the family refuses for this network
            if not config.model_kwargs:
                raise
            options = " ".join(f"{k}={v}" for k, v in config.model_kwargs.items())
            raise UserError(f"--model-arg {options}: {config.model}: {exc}") from None
        model = config.model
    else:
        model = None
    if config.weights is not None and not resumed:
        lines.append(load_pretrained(net, config.weights, model=model).line(str(config.weights)))
    frozen = freeze(net, config.freeze)
    if frozen:
        lines.append(f"frozen: {frozen:,} backbone parameters (training the head {head_module(net)[0]} only)")
    return net, lines


def load_pretrained(net: nn.Module, source: str | Path | dict[str, Any], *, model: str | None = None
                    ) -> LoadedWeights:
    """``source`` into ``net`` as fine-tuning loads it: :func:`~cnnzoo.weights.load_weights` with ``strict=False``,
    renaming the keys of the file's layout (``layout_key_map``)."""
    return load_weights(net, source, strict=False, torchvision_key_map=layout_key_map(net, model, source), name=model)


def layout_key_map(net: nn.Module, model: str | None, source: object) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The key map of a file to fine-tune ``net`` from: akamaster/pytorch_resnet_cifar10's CIFAR ResNets, recognised
    by their keys, get the ResNet map (their option-A shortcut zeros half the new channels before the identity and
    half after: refused unless ``net`` was built with ``zero_pad="split"``); any other file the registered
    ``model``'s torchvision map, if it has one."""
    registered = None
    if model is not None:
        try:
            registered = model_entry(model).torchvision_key_map
        except UserError:  # not a registered name
            pass

    def key_map(state: dict[str, Any]) -> dict[str, Any]:
        if "linear.weight" in state and "layer1.0.conv1.weight" in state:  # akamaster/pytorch_resnet_cifar10
            pads = [m for m in net.modules() if isinstance(m, ZeroPadShortcut)]
            if pads and not all(m.channel_pad[0] for m in pads):
                raise WeightsError(f"{source}: a CIFAR ResNet with option A zeros half before and half after the "
                                   "identity (akamaster layout): build the model with --model-arg zero_pad=split")
            return resnet_key_map(state)
        return registered(state) if registered is not None else state

    return key_map


def head_module(net: nn.Module) -> tuple[str, nn.Module]:
    """(name, module) of the classifier: the last ``nn.Linear``, else the last ``nn.Conv2d``."""
    for kind in (nn.Linear, nn.Conv2d):
        found = [(n, m) for n, m in net.named_modules() if isinstance(m, kind) and "aux" not in n]
        if found:
            return found[-1]
    raise UserError(f"{type(net).__name__}: no classifier layer to fine-tune")


def head_parameters(net: nn.Module) -> list[nn.Parameter]:
    return list(head_module(net)[1].parameters())


def freeze(net: nn.Module, what: str | None) -> int:
    """``what="backbone"``: every parameter but the head's stops training; returns how many were frozen."""
    if what is None:
        return 0
    if what not in FREEZE:
        raise UserError(f"--freeze must be one of {', '.join(FREEZE)}, got {what!r}")
    keep = {id(p) for p in head_parameters(net)}
    frozen = 0
    for p in net.parameters():
        if id(p) not in keep:
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


__all__ = ["FREEZE", "freeze", "head_module", "head_parameters", "layout_key_map", "load_pretrained", "start_net"]
