"""A meta-device copy of a model: same module tree, parameters and buffers without data.

The analyzer never runs (or hooks, or switches to training mode, or converts) the model it is given: it works on
this copy. Building it costs about 10 microseconds per module, whatever the parameter count.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn
from torch.nn.parameter import is_lazy

_META = torch.device("meta")


class AnalysisError(RuntimeError):
    """The model could not be run on the meta device with the requested input (message says why)."""


def _meta_tensor(t: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    target = dtype if (dtype is not None and t.is_floating_point()) else t.dtype
    return torch.empty_strided(t.shape, t.stride(), dtype=target, device=_META)


_PLAIN_TYPES = frozenset((bool, int, float, str, type(None), tuple, list, dict, OrderedDict, set, nn.Parameter))


class MetaCopy(NamedTuple):
    """What :func:`meta_clone` returns."""

    model: nn.Module
    modules: list[tuple[str, nn.Module]]  # (path, module) as ``named_modules()`` lists them
    params: dict[int, torch.Tensor]  # id(original parameter) -> its meta parameter
    tensors: list[torch.Tensor]  # every meta parameter and buffer
    sizes: dict[int, tuple[int, int, bool]]  # id(meta parameter) -> (numel, nbytes, requires_grad)


def meta_clone(model: nn.Module, dtype: torch.dtype | None = None) -> MetaCopy:
    """A structural copy of ``model`` whose parameters and buffers are meta tensors (``dtype`` for floating ones).

    Modules are new objects with their own attribute dicts (the analysis only ever writes to those: ``training``
    and the ``forward`` wrappers), so nothing done to the clone reaches the original. A parameter shared between
    modules maps to one meta parameter (tied weights stay tied); plain tensor attributes become meta tensors too.
    Modules kept outside ``nn.Module`` containers (say, in a plain list) are not copied.
    """
    if isinstance(model, torch.jit.ScriptModule):
        raise AnalysisError("TorchScript modules cannot be analysed; pass the eager nn.Module")
    tensors: dict[int, torch.Tensor] = {}
    params: dict[int, torch.Tensor] = {}
    sizes: dict[int, tuple[int, int, bool]] = {}
    copies: dict[int, nn.Module] = {}
    listing: list[tuple[str, nn.Module]] = []

    def param(p: nn.Parameter) -> torch.Tensor:
        meta = params.get(id(p))
        if meta is None:
            if is_lazy(p):
                raise AnalysisError("the model has uninitialised (lazy) parameters: run one forward pass first")
            # A plain leaf tensor, not an nn.Parameter: modules read parameters through _parameters either way, and
            # every access to a Parameter subclass goes through __torch_function__, which is measurably slower.
            meta = params[id(p)] = tensors[id(p)] = _meta_tensor(p, dtype).requires_grad_(p.requires_grad)
            sizes[id(meta)] = (meta.numel(), meta.numel() * meta.element_size(), meta.requires_grad)
        return meta

    def tensor(b: torch.Tensor) -> torch.Tensor:
        meta = tensors.get(id(b))
        if meta is None:
            meta = tensors[id(b)] = _meta_tensor(b, dtype)
        return meta

    def clone(m: nn.Module, path: str) -> nn.Module:
        new = copies.get(id(m))
        if new is not None:
            return new
        new = copies[id(m)] = m.__class__.__new__(m.__class__)
        listing.append((path, new))
        state = dict(m.__dict__)
        for k, v in state.items():
            # a plain tensor attribute (not a buffer) becomes meta too; the type test skips the common attributes
            if type(v) not in _PLAIN_TYPES and isinstance(v, torch.Tensor) and v.dim() > 0:
                state[k] = tensor(v)
        state["_parameters"] = {k: None if p is None else param(p) for k, p in m._parameters.items()}
        state["_buffers"] = {k: None if b is None else tensor(b) for k, b in m._buffers.items()}
        state["_modules"] = {k: None if c is None else clone(c, f"{path}.{k}" if path else k)
                             for k, c in m._modules.items()}  # fmt: skip
        new.__dict__.update(state)
        return new

    root = clone(model, "")
    return MetaCopy(root, listing, params, list(tensors.values()), sizes)
