"""Starting from weights (``--weights FILE``): every tensor that fits is loaded, a classifier of another class count
is new, ``--freeze backbone`` trains the head alone, ``head_lr_mult`` scales the head's learning rate.

``FILE`` is a torchvision state dict (for the ``_tv`` and torchvision-named models: the keys are mapped where cnnzoo's
names differ), a cnnzoo run's weights or checkpoint, or a plain state dict; it is read by the one safe loading path
(``checkpoint.read_state_dict``: safetensors, or ``torch.load(weights_only=True)``). The *head* is the network's last
fully connected layer (the last convolution for the all-convolutional NiN and SqueezeNet): it is what a different
class count replaces, what ``--freeze backbone`` leaves trainable and what ``head_lr_mult`` applies to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import WeightsError, read_state_dict
from ..errors import UserError
from ..layers.residual import ZeroPadShortcut
from ..models.resnet import torchvision_key_map as resnet_key_map
from ..registry import create_model, model_entry

FREEZE = ("backbone",)


@dataclass(frozen=True)
class Loaded:
    loaded: tuple[str, ...]  # state-dict keys taken from the file
    new: tuple[str, ...]  # keys left as initialised (absent from the file, or of another shape)
    ignored: tuple[str, ...]  # keys of the file the model does not have

    def line(self, source: str) -> str:
        new = f"; new: {', '.join(self.new)}" if self.new else "; nothing new"
        extra = f"; {len(self.ignored)} tensors of the file unused" if self.ignored else ""
        total = len(self.loaded) + len(self.new)
        return f"weights: loaded {len(self.loaded)} of {total} tensors from {source}{new}{extra}"


def start_net(config: Any, net: nn.Module | None, *, num_classes: int, in_channels: int, resumed: bool
              ) -> tuple[nn.Module, list[str]]:
    """The run's network (``create_model`` with the ``--model-arg`` options unless ``net`` is given), its
    ``--weights`` loaded (a fresh run only: a resumed run has its own) and ``--freeze`` applied; and the header
    lines saying what was loaded, what is new and what is frozen."""
    lines = []
    if net is None:
        try:
            net = create_model(config.model, num_classes=num_classes, in_channels=in_channels, **config.model_kwargs)
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


def load_pretrained(net: nn.Module, source: str | Path | dict[str, Any], *, model: str | None = None) -> Loaded:
    """Copy every tensor of ``source`` whose key and shape fit ``net``; the rest stays as initialised."""
    state = read_state_dict(source)
    own = net.state_dict()
    key_map = model_entry(model).torchvision_key_map if model is not None and _registered(model) else None
    if "linear.weight" in state and "layer1.0.conv1.weight" in state:  # akamaster/pytorch_resnet_cifar10
        pads = [m for m in net.modules() if isinstance(m, ZeroPadShortcut)]
        if pads and not all(m.channel_pad[0] for m in pads):
            raise WeightsError(f"{source}: a CIFAR ResNet with option A zeros half before and half after the "
                               "identity (akamaster layout): build the model with --model-arg zero_pad=split")
        key_map = resnet_key_map
    if key_map is not None and not set(state) <= set(own):
        state = key_map(state)
    fits = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    head = {f"{name}.{p}" for name, module in [head_module(net)] for p, _ in module.named_parameters()}
    loaded_weights = [k for k in fits if own[k].is_floating_point()]
    if len(loaded_weights) < len([k for k in own if own[k].is_floating_point() and k not in head]) // 2:
        raise WeightsError(f"weights do not fit {model or type(net).__name__}: only {len(fits)} of {len(own)} "
                           f"tensors match by name and shape (is {source} for this architecture?)")
    with torch.no_grad():
        for key, value in fits.items():
            own[key].copy_(value)
    return Loaded(tuple(fits), tuple(k for k in own if k not in fits), tuple(k for k in state if k not in own))


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


def _registered(model: str) -> bool:
    try:
        model_entry(model)
    except UserError:
        return False
    return True


__all__ = ["FREEZE", "Loaded", "freeze", "head_module", "head_parameters", "load_pretrained", "start_net"]
