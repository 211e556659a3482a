"""The meta device, as the analyzer uses it: a model built or copied there, and fast shape functions for its ops.

A meta tensor has a shape, strides and a dtype and no data, so nothing the size of the input or of the weights is
ever allocated:

* :func:`meta_model` builds a registered network on the meta device (initialisers' random fills skipped);
* :func:`meta_clone` copies any model there (the analyzer never runs, hooks or converts the model it is given);
* :data:`FAST` serves the hot ops whose stock meta kernels are slow Python (batch norm in training mode: ~2 ms a
  call), with the stock kernel's output shape, strides and dtype.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.parameter import is_lazy
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
_META = torch.device("meta")


class AnalysisError(RuntimeError):
    """The model could not be run on the meta device with the requested input (message says why)."""


# ---- building and copying a model on the meta device --------------------------------------------------------------

# In-place random fills, as initialisers call them (kaiming_normal_, xavier_uniform_, trunc_normal_, ...).
_RANDOM_FILLS = frozenset((
    aten.normal_.default, aten.uniform_.default, aten.bernoulli_.float, aten.bernoulli_.Tensor,
    aten.exponential_.default, aten.log_normal_.default, aten.cauchy_.default, aten.geometric_.default,
    aten.random_.default,
))  # fmt: skip


class _SkipRandomFills(TorchDispatchMode):
    """A random fill of a meta tensor has nothing to fill: return the tensor. PyTorch serves some of these
    (``normal_``) through Python reference kernels whose first call imports ``torch._dynamo`` (about a second)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:  # see Interceptor._should_skip_dynamo
        return False

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        if func in _RANDOM_FILLS and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


def meta_model(name: str, **kwargs: Any) -> nn.Module:
    """``create_model(name, **kwargs)`` on the meta device: no weights allocated, no initialisation run.

    A builder that cannot run on meta is built for real (slower, same shapes)."""
    from ..registry import create_model

    try:
        with torch.device("meta"), _SkipRandomFills():
            return create_model(name, **kwargs)
    except Exception:
        return create_model(name, **kwargs)


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


# ---- fast shape functions -----------------------------------------------------------------------------------------
# PyTorch's meta kernels for convolution, pooling, batch norm, layer norm, elementwise ops, ``mean``, ``cat`` and
# ``addmm`` run Python reference implementations, which would make the analyzer 10x slower on BN and DenseNet models;
# the checks of the convolution and pooling kernels (torch._check) also import torch.fx's symbolic shapes and sympy,
# 0.3 s at a process's first call. Each function here
# returns the same outputs (shape, strides, dtype) as the stock kernel for the common case, and ``None`` (meaning
# "run the stock kernel") for anything else: mixed dtypes, broadcasting, non-dense layouts.
# ``tests/test_analysis.py`` checks them against the stock kernels.

_REDUCED = (torch.float16, torch.bfloat16)
_NUMBER = (int, float, bool, type(None), str)


def _dense(t: torch.Tensor) -> bool:
    return t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last))


def _like(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.empty_strided(t.shape, t.stride(), dtype=dtype or t.dtype, device=_META)


def _contiguous(shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=_META)


def _elementwise(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """Same-shape, same-dtype floating tensors with number arguments: the output is laid out like the input."""
    first: torch.Tensor | None = None
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            if first is None:
                if not a.is_floating_point() or not _dense(a):
                    return None
                first = a
            elif a.shape != first.shape or a.stride() != first.stride() or a.dtype != first.dtype:
                return None
        elif not isinstance(a, _NUMBER):
            return None
    return None if first is None else _like(first)


def _inplace(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """``x.add_(y)`` and friends with ``y`` of ``x``'s shape and dtype (or a number): the result is ``x`` itself.

    Integer ``x`` (batch norm's ``num_batches_tracked += 1``) only with integer numbers: a float would be an error.
    """
    x = args[0]
    floating = x.is_floating_point()
    for a in (*args[1:], *kwargs.values()):
        if isinstance(a, torch.Tensor):
            if a.shape != x.shape or a.dtype != x.dtype:
                return None
        elif not isinstance(a, _NUMBER) or (not floating and isinstance(a, float)):
            return None
    return x


def _empty(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """``torch.empty(size, dtype=..., device="meta")``, contiguous (batch norm's reserve tensor, among others)."""
    device = kwargs.get("device")
    if len(args) != 1 or device is None or torch.device(device).type != "meta":
        return None
    if kwargs.get("layout") not in (None, torch.strided) or kwargs.get("pin_memory"):
        return None
    if kwargs.get("memory_format") not in (None, torch.contiguous_format, torch.preserve_format):
        return None
    return _contiguous(args[0], kwargs.get("dtype") or torch.get_default_dtype())


def _batch_norm(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[torch.Tensor, ...] | None:
    x = args[0]
    training = args[5] if len(args) > 5 else kwargs.get("training")
    if kwargs or not isinstance(training, bool) or not x.is_floating_point() or not _dense(x) or x.dim() < 2:
        return None
    stats = (x.shape[1] if training else 0,)  # evaluation mode returns empty statistics (as the CPU kernel does)
    stat_dtype = torch.float32 if x.dtype in _REDUCED else x.dtype
    return _like(x), _contiguous(stats, stat_dtype), _contiguous(stats, stat_dtype)


def _layer_norm(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[torch.Tensor, ...] | None:
    x, normalized = args[0], args[1]
    if kwargs or not x.is_floating_point() or not x.is_contiguous():
        return None
    axis = x.dim() - len(normalized)
    stat_shape = (*x.shape[:axis], *([1] * len(normalized)))
    stat_dtype = torch.float32 if x.dtype in _REDUCED else x.dtype
    return _like(x), _contiguous(stat_shape, stat_dtype), _contiguous(stat_shape, stat_dtype)


def _mean_dim(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    if set(kwargs) - {"dim", "keepdim"} or not x.is_floating_point() or not x.is_contiguous() or not dims:
        return None
    reduced = {d % x.dim() for d in dims}
    shape = [1 if i in reduced else s for i, s in enumerate(x.shape) if keepdim or i not in reduced]
    return _contiguous(shape, x.dtype)


def _cat(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    tensors = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if set(kwargs) - {"dim"} or not tensors:
        return None
    first = tensors[0]
    dim = dim % first.dim() if first.dim() else 0
    size = 0
    for t in tensors:
        if t.dtype != first.dtype or t.dim() != first.dim() or t.dim() == 0 or not t.is_contiguous():
            return None
        if any(t.shape[i] != first.shape[i] for i in range(t.dim()) if i != dim):
            return None
        size += t.shape[dim]
    shape = list(first.shape)
    shape[dim] = size
    return _contiguous(shape, first.dtype)


def _convolution(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """``aten.convolution`` (what ``nn.Conv*d`` calls), not transposed: ``out = (in + 2p - d(k - 1) - 1) // s + 1``
    per spatial axis, contiguous (the stock meta kernel's layout). Anything it would refuse runs the stock kernel,
    which raises the error."""
    if kwargs or len(args) != 9:
        return None
    x, weight, _, stride, padding, dilation, transposed, _, groups = args
    spatial = x.dim() - 2
    if transposed or spatial < 1 or weight.dim() != x.dim() or weight.shape[1] * groups != x.shape[1]:
        return None
    if not (len(stride) == len(padding) == len(dilation) == spatial) or x.dtype != weight.dtype:
        return None
    shape = [x.shape[0], weight.shape[0]]
    for size, k, s, p, d in zip(x.shape[2:], weight.shape[2:], stride, padding, dilation):
        out = (size + 2 * p - d * (k - 1) - 1) // s + 1
        if out < 1:
            return None
        shape.append(out)
    return _contiguous(shape, x.dtype)


def _ints(value: Any, n: int) -> list[int] | None:
    """A size argument (an int, or a list of 1 or ``n`` ints) as ``n`` ints."""
    value = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(value) == 1:
        return value * n
    return value if len(value) == n else None


def _pooled(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int | None:
    """ATen's ``pooling_output_shape`` (Pool.h); ``None`` where ATen refuses (the stock kernel raises the error)."""
    if s <= 0 or p < 0 or p > k // 2:
        return None
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1  # the last window must start inside the input or its left padding
    return out if out >= 1 else None


def _pool_shape(x: torch.Tensor, spatial: int, kernel: Any, stride: Any, padding: Any, dilation: Any,
                ceil_mode: Any) -> list[int] | None:  # fmt: skip
    k, p, d = _ints(kernel, spatial), _ints(padding, spatial), _ints(dilation, spatial)
    s = _ints(stride, spatial) if stride else k
    if None in (k, s, p, d) or not isinstance(ceil_mode, bool) or x.dim() not in (spatial + 1, spatial + 2):
        return None
    sizes = [_pooled(*a, ceil_mode) for a in zip(x.shape[-spatial:], k, s, p, d)]  # type: ignore[arg-type]
    return None if None in sizes else [*x.shape[:-spatial], *sizes]  # type: ignore[list-item]


def _pool_layout(x: torch.Tensor) -> torch.memory_format | None:
    """The 2-d pools' output layout, ATen's ``suggest_memory_format`` of the input; ``None`` when it is ambiguous."""
    contiguous = x.is_contiguous()
    last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    if contiguous == last:
        return None
    return torch.contiguous_format if contiguous else torch.channels_last


def _max_pool2d(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``max_pool2d_with_indices(x, kernel, stride=[], padding=0, dilation=1, ceil_mode=False)``."""
    if kwargs or not 2 <= len(args) <= 6 or not args[0].is_floating_point():
        return None
    x, kernel, stride, padding, dilation, ceil_mode = (*args, *([], [0], [1], False)[len(args) - 2:])
    shape, layout = _pool_shape(x, 2, kernel, stride, padding, dilation, ceil_mode), _pool_layout(x)
    if shape is None or layout is None:
        return None
    return (torch.empty(shape, dtype=x.dtype, device=_META, memory_format=layout),
            torch.empty(shape, dtype=torch.int64, device=_META, memory_format=layout))  # fmt: skip


def _avg_pool(spatial: int) -> Callable[[Sequence[Any], dict[str, Any]], torch.Tensor | None]:
    """``avg_pool{2,3}d(x, kernel, stride=[], padding=0, ceil_mode=False, count_include_pad=True, divisor=None)``:
    2-d keeps the input's layout, 3-d (LocalResponseNorm's) is contiguous."""

    def shape_fn(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
        if kwargs or not 2 <= len(args) <= 7 or not args[0].is_floating_point():
            return None
        x, kernel, stride, padding, ceil_mode, _, divisor = (*args, *([], [0], False, True, None)[len(args) - 2:])
        shape = _pool_shape(x, spatial, kernel, stride, padding, 1, ceil_mode)
        layout = _pool_layout(x) if spatial == 2 else torch.contiguous_format
        if shape is None or layout is None or divisor == 0:
            return None
        return torch.empty(shape, dtype=x.dtype, device=_META, memory_format=layout)

    return shape_fn


def _adaptive_avg_pool2d(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    x, size = args[0], args[1]
    layout = _pool_layout(x)
    if kwargs or x.dim() not in (3, 4) or len(size) != 2 or layout is None or not x.is_floating_point():
        return None
    return torch.empty((*x.shape[:-2], *size), dtype=x.dtype, device=_META, memory_format=layout)


def _addmm(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    bias, a, b = args[0], args[1], args[2]
    if kwargs or not (bias.dtype == a.dtype == b.dtype) or a.dim() != 2 or b.dim() != 2 or bias.dim() > 2:
        return None
    return _contiguous((a.shape[0], b.shape[1]), a.dtype)


def _empty_like(args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    x = args[0]
    if len(args) > 1 or any(v is not None and v != torch.preserve_format for v in kwargs.values()) or not _dense(x):
        return None
    return _like(x)


def _dropout(args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
    x = args[0]
    if kwargs or not x.is_floating_point() or not _dense(x):
        return None
    return _like(x), _like(x, torch.bool)


_ELEMENTWISE = (
    aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.add.Scalar, aten.mul.Scalar,
    aten.relu.default, aten.sigmoid.default, aten.tanh.default, aten.gelu.default, aten.silu.default,
    aten.hardtanh.default, aten.leaky_relu.default, aten.elu.default, aten.hardswish.default,
    aten.hardsigmoid.default, aten.pow.Tensor_Scalar, aten.sqrt.default, aten.rsqrt.default, aten.exp.default,
    aten.neg.default, aten.clamp.default, aten.clamp_min.default,
)  # fmt: skip

_INPLACE = (
    aten.add_.Tensor, aten.sub_.Tensor, aten.mul_.Tensor, aten.div_.Tensor, aten.add_.Scalar, aten.mul_.Scalar,
    aten.div_.Scalar, aten.relu_.default, aten.hardtanh_.default, aten.clamp_.default, aten.clamp_min_.default,
    aten.sigmoid_.default, aten.leaky_relu_.default,
)  # fmt: skip

FAST: dict[Any, Callable[[Sequence[Any], dict[str, Any]], Any]] = {op: _elementwise for op in _ELEMENTWISE}
FAST.update({op: _inplace for op in _INPLACE})
FAST.update({
    aten.native_batch_norm.default: _batch_norm,
    aten.native_layer_norm.default: _layer_norm,
    aten.mean.dim: _mean_dim,
    aten.cat.default: _cat,
    aten.convolution.default: _convolution,
    aten.max_pool2d_with_indices.default: _max_pool2d,
    aten.avg_pool2d.default: _avg_pool(2),
    aten.avg_pool3d.default: _avg_pool(3),
    aten._adaptive_avg_pool2d.default: _adaptive_avg_pool2d,
    aten.addmm.default: _addmm,
    aten.empty_like.default: _empty_like,
    aten.empty.memory_format: _empty,
    aten.native_dropout.default: _dropout,
})  # fmt: skip
