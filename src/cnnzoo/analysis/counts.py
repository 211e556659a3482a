"""Per-op cost formulas at the aten level: what one call of an op costs, from its argument and output shapes.

Conventions (those of torchvision's published ``_ops`` and fvcore):

* One multiply-add (MAC) = 1. ``FLOPs = 2 x MACs``. MACs are counted for convolutions and matrix products only,
  bias excluded; this is the convention of torchvision's published ``_ops``, fvcore, thop and the papers.
* Everything else an op costs is reported separately as *extra FLOPs* in one category per op (``bias``, ``norm``,
  ``act``, ``pool``, ``eltwise``, ``softmax``, ``upsample``), so any other tool's number can be rebuilt from them.
* Data movement (views, ``cat``, copies, padding, factories, random fills) costs 0 by definition, and is *known*.
* An op with no formula here is *unknown*: :func:`op_cost` returns ``None`` and the analyzer lists it under
  "uncounted" instead of silently counting 0.

Formulas, for an output ``out`` and one call (N = batch, all shapes include the batch):

=====================  =================================================================================
op                     MACs / extra FLOPs
=====================  =================================================================================
convolution            ``N * C_out * prod(out_spatial) * (C_in / groups) * prod(kernel)``
                       = ``out.numel() * weight.shape[1] * prod(kernel)``; bias: ``out.numel()``
transposed conv        over the *input* positions: ``in.numel() * weight.shape[1] * prod(kernel)``
                       (``weight`` is ``(C_in, C_out / groups, *k)``; as FlopCounterMode counts it)
mm / addmm             ``M * K * N`` for ``(M, K) @ (K, N)``; addmm bias: ``M * N``
bmm / baddbmm          ``B * M * K * N``; baddbmm bias: ``B * M * N``
mv / addmv / dot       ``M * K`` / ``K``
attention (SDPA)       ``B * H * L * S * (E + E_v)``: the two batched products Q K^T and P V
batch/layer/group norm norm: ``2 * out.numel()`` (normalise and scale-shift: one multiply-add per element)
activations            act: ``out.numel()``
max / avg pool         pool: ``out.numel() * prod(kernel)`` (a compare or an add per window element)
adaptive pool, mean    pool: ``in.numel()``
elementwise            eltwise: ``out.numel()`` (add, mul, div, pow, ... one op per output element)
softmax / log_softmax  softmax: ``3 * out.numel()`` (exp, sum, divide)
upsample               upsample: ``out.numel()``
=====================  =================================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

# (macs, {category: extra_flops}); {} when the op costs nothing beyond its MACs.
Cost = tuple[int, dict[str, int]]
_FREE: Cost = (0, {})


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _first_tensor(out: Any) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for item in out:
            if isinstance(item, torch.Tensor):
                return item
    return None


def _numel(out: Any) -> int:
    t = _first_tensor(out)
    return t.numel() if t is not None else 0


def conv_macs(
    input_shape: Sequence[int], weight_shape: Sequence[int], out_shape: Sequence[int], *, transposed: bool = False
) -> int:
    """MACs of one (grouped, dilated, strided, possibly transposed) convolution; bias excluded.

    ``weight_shape[1]`` is ``C_in / groups`` (``C_out / groups`` when transposed), so groups need no separate term.
    """
    kernel = math.prod(weight_shape[2:])
    if transposed:
        return math.prod(input_shape) * weight_shape[1] * kernel
    return math.prod(out_shape) * weight_shape[1] * kernel


def _convolution(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    x, weight, bias = args[0], args[1], _arg(args, kwargs, 2, "bias")
    transposed = bool(_arg(args, kwargs, 6, "transposed", False))
    macs = conv_macs(x.shape, weight.shape, out.shape, transposed=transposed)
    return macs, ({"bias": out.numel()} if bias is not None else {})


def _conv_no_transpose(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    x, weight, bias = args[0], args[1], _arg(args, kwargs, 2, "bias")
    return conv_macs(x.shape, weight.shape, out.shape), ({"bias": out.numel()} if bias is not None else {})


def _mm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * b.shape[1], {}


def _addmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    a, b = args[1], args[2]
    return a.shape[0] * a.shape[1] * b.shape[1], {"bias": out.numel()}


def _bmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    a, b = args[0], args[1]
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], {}


def _baddbmm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    a, b = args[1], args[2]
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], {"bias": out.numel()}


def _mv(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    return args[0].numel(), {}


def _addmv(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    return args[1].numel(), {"bias": out.numel()}


def _dot(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    return args[0].numel(), {}


def _attention(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    q, k, v = args[0], args[1], args[2]
    batch_heads = math.prod(q.shape[:-2])
    return batch_heads * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1]), {}


def _per_output(category: str, factor: int = 1) -> Callable[[Sequence[Any], dict[str, Any], Any], Cost]:
    def cost(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
        return 0, {category: factor * _numel(out)}

    return cost


def _per_input(category: str) -> Callable[[Sequence[Any], dict[str, Any], Any], Cost]:
    def cost(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
        x = args[0]
        return 0, {category: x.numel() if isinstance(x, torch.Tensor) else 0}

    return cost


def _windowed_pool(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    x = args[0]
    kernel = _arg(args, kwargs, 1, "kernel_size")
    spatial = max(x.dim() - 2, 1)
    kernel = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel]
    if len(kernel) == 1:
        kernel = kernel * spatial
    return 0, {"pool": _numel(out) * math.prod(kernel)}


_MAC_OPS: dict[str, Callable[[Sequence[Any], dict[str, Any], Any], Cost]] = {
    "convolution": _convolution,
    "_convolution": _convolution,
    "convolution_overrideable": _convolution,
    "cudnn_convolution": _conv_no_transpose,
    "mkldnn_convolution": _conv_no_transpose,
    "_slow_conv2d_forward": _conv_no_transpose,
    "mm": _mm,
    "addmm": _addmm,
    "_addmm_activation": _addmm,
    "bmm": _bmm,
    "baddbmm": _baddbmm,
    "mv": _mv,
    "addmv": _addmv,
    "dot": _dot,
    "vdot": _dot,
    "_scaled_dot_product_flash_attention": _attention,
    "_scaled_dot_product_flash_attention_for_cpu": _attention,
    "_scaled_dot_product_efficient_attention": _attention,
    "_scaled_dot_product_cudnn_attention": _attention,
    "_scaled_dot_product_fused_attention_overrideable": _attention,
}

_NORM_OPS = (
    "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
    "_native_batch_norm_legit_functional", "_batch_norm_with_update", "_batch_norm_no_update",
    "_batch_norm_with_update_functional", "native_layer_norm", "native_group_norm", "_fused_rms_norm",
    "batch_norm_elemt", "instance_norm",
)  # fmt: skip
_ACT_OPS = (
    "relu", "relu_", "relu6", "gelu", "gelu_", "silu", "silu_", "sigmoid", "sigmoid_", "tanh", "tanh_",
    "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "selu_", "celu", "celu_",
    "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "softplus", "mish", "mish_", "threshold",
    "threshold_", "clamp", "clamp_", "clamp_min", "clamp_min_", "clamp_max", "clamp_max_", "prelu",
    "_prelu_kernel", "log_sigmoid_forward", "glu", "rrelu_with_noise", "rrelu_with_noise_",
)  # fmt: skip
_WINDOW_POOL_OPS = (
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "max_pool3d_with_indices",
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "_mkldnn_max_pool2d", "mkldnn_max_pool2d",
)  # fmt: skip
_REDUCE_POOL_OPS = (
    "_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_avg_pool1d", "adaptive_max_pool1d",
    "adaptive_max_pool2d", "adaptive_max_pool3d", "mean", "sum", "amax", "amin", "max", "min", "var", "std",
    "var_mean", "std_mean", "logsumexp", "norm", "linalg_vector_norm", "prod", "argmax", "argmin",
)  # fmt: skip
_ELTWISE_OPS = (
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "neg_", "pow", "pow_", "sqrt",
    "sqrt_", "rsqrt", "rsqrt_", "exp", "exp_", "log", "log_", "abs", "abs_", "reciprocal", "reciprocal_",
    "addcmul", "addcmul_", "addcdiv", "addcdiv_", "where", "maximum", "minimum", "lerp", "lerp_", "sign",
    "square", "floor", "ceil", "round", "trunc", "remainder", "fmod", "erf", "sin", "cos", "eq", "ne", "lt", "le",
    "gt", "ge", "logical_and", "logical_or", "logical_not", "bitwise_and", "bitwise_or", "masked_fill",
    "masked_fill_", "ge_", "lt_", "floor_divide", "xlogy",
)  # fmt: skip
_SOFTMAX_OPS = ("_softmax", "_log_softmax", "softmax", "log_softmax", "_safe_softmax")
_UPSAMPLE_OPS = (
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact1d",
    "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "upsample_linear1d", "upsample_bilinear2d",
    "_upsample_bilinear2d_aa", "upsample_bicubic2d", "_upsample_bicubic2d_aa", "upsample_trilinear3d",
    "grid_sampler_2d",
)  # fmt: skip
# Data movement, views, factories and random fills: free by definition (known, cost 0).
DATA_OPS = frozenset(
    (
        "view", "_unsafe_view", "reshape", "_reshape_alias", "t", "transpose", "transpose_", "permute", "expand",
        "expand_as", "unsqueeze", "unsqueeze_", "squeeze", "squeeze_", "slice", "select", "split", "split_with_sizes",
        "unbind", "chunk", "narrow", "cat", "stack", "clone", "contiguous", "_to_copy", "copy_", "to", "detach",
        "detach_", "alias", "lift_fresh", "lift_fresh_copy", "empty", "empty_like", "empty_strided", "new_empty",
        "new_empty_strided", "zeros", "zeros_like", "new_zeros", "ones", "ones_like", "new_ones", "full",
        "full_like", "new_full", "fill_", "fill", "zero_", "scalar_tensor", "arange", "constant_pad_nd", "pad",
        "reflection_pad1d", "reflection_pad2d", "replication_pad1d", "replication_pad2d", "as_strided",
        "index_select", "gather", "index", "repeat", "flip", "roll", "rand", "rand_like", "randn", "randn_like",
        "randint", "bernoulli", "bernoulli_", "uniform_", "normal_", "dropout", "feature_dropout",
        "alpha_dropout", "_local_scalar_dense", "item", "is_nonzero", "_assert_async", "sym_size", "sym_stride",
        "sym_numel", "sym_storage_offset", "unfold", "im2col", "col2im", "pixel_shuffle", "pixel_unshuffle",
        "channel_shuffle", "native_channel_shuffle", "flatten", "unflatten", "movedim", "diagonal", "tril", "triu",
        "_conj", "conj", "resolve_conj", "resolve_neg", "view_as_real", "view_as_complex", "set_", "resize_",
        "_assert_tensor_metadata", "_has_compatible_shallow_copy_type", "_unsafe_index", "slice_scatter",
        "select_scatter", "index_put", "index_put_", "masked_select", "nonzero", "topk", "sort",
    )
)  # fmt: skip

_TABLE: dict[str, Callable[[Sequence[Any], dict[str, Any], Any], Cost]] = dict(_MAC_OPS)
_TABLE.update({name: _per_output("norm", 2) for name in _NORM_OPS})
_TABLE.update({name: _per_output("act") for name in _ACT_OPS})
_TABLE.update({name: _windowed_pool for name in _WINDOW_POOL_OPS})
_TABLE.update({name: _per_input("pool") for name in _REDUCE_POOL_OPS})
_TABLE.update({name: _per_output("eltwise") for name in _ELTWISE_OPS})
_TABLE.update({name: _per_output("softmax", 3) for name in _SOFTMAX_OPS})
_TABLE.update({name: _per_output("upsample") for name in _UPSAMPLE_OPS})
# Dropout in training mode: one multiply per element by the scaled mask.
_TABLE["native_dropout"] = _per_output("eltwise")

CONV_OPS = frozenset(name for name, fn in _MAC_OPS.items() if fn in (_convolution, _conv_no_transpose))
POOL_OPS = frozenset(_WINDOW_POOL_OPS + _REDUCE_POOL_OPS[:6])


def is_known(op: str) -> bool:
    """Whether ``op`` (an aten overload-packet name such as ``"convolution"``) has a formula here."""
    return op in _TABLE or op in DATA_OPS


def op_cost(op: str, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost | None:
    """``(macs, {category: extra_flops})`` of one call of aten op ``op``; ``None`` if it has no formula."""
    fn = _TABLE.get(op)
    if fn is not None:
        return fn(args, kwargs, out)
    if op in DATA_OPS:
        return _FREE
    return None
