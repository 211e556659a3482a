"""``analyze(model_or_name, input_size) -> Analysis``: the lecture's layer tables, exact, for any model and input size.

Two passes over a meta copy of the model (nothing input-sized is allocated, the model passed in is untouched):

1. eval mode, no grad, under the :class:`~.interceptor.Interceptor`: per layer output shape, activations, MACs by
   formula (:mod:`.counts`), receptive field (:mod:`.receptive_field`), unknown ops;
2. training mode, with grad, under ``saved_tensors_hooks``: the bytes autograd keeps for backward, per layer.
   With parameters, gradients, optimizer state and the input batch this is the training-memory estimate (the
   tests check it against the tensors a real CPU step keeps).
"""

from __future__ import annotations

import gc
from collections.abc import Sequence

import torch
from torch import nn

from .interceptor import Interceptor
from .meta import AnalysisError, MetaCopy, meta_clone, meta_model
from .options import OPTIMIZERS, parse_dtype, parse_input_size
from .result import Analysis, Totals
from .rows import SavedTensorCounter, layer_stats, nbytes, storage_key


def analyze(
    model: nn.Module | str,
    input_size: Sequence[int] | str | None = None,
    *,
    batch_size: int = 1,
    dtype: torch.dtype | str = torch.float32,
    optimizer: str = "sgd",
    training: bool = True,
) -> Analysis:
    """Analyse ``model`` (an ``nn.Module`` or a registered name) on an input of ``input_size`` = ``(C, H, W)``.

    Args:
        input_size: default: the registered model's ``input_size``, or ``(3, 224, 224)`` for a module.
        batch_size: all counts (MACs, activations, saved bytes) are for this batch.
        dtype: of parameters and activations (``torch.bfloat16`` or ``"bf16"``, ...).
        optimizer: for the training-memory estimate: ``sgd`` (with momentum), ``adam``, ``adamw``, ``rmsprop``,
            ``none``.
        training: also run the training-mode pass (saved-for-backward bytes, training memory).
    """
    # The passes create many small objects, and every few analyses they would trigger a full cyclic-GC sweep of the
    # torch-sized heap (about 170 ms, more than most analyses): the collector is paused for the duration (reference
    # counting still frees everything). Analysing the 71 registered models in one process: 3.8 s, 5.4 s without.
    # Training-mode forwards may draw random numbers (dropout masks, drop-path decisions on the CPU): the global
    # generator is restored afterwards, and seeded inside, so that an analysis is reproducible.
    enabled = gc.isenabled()
    gc.disable()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(0)
            return _analyze(
                model, input_size, batch_size=batch_size, dtype=dtype, optimizer=optimizer, training=training
            )
    finally:
        if enabled:
            gc.enable()


def _analyze(
    model: nn.Module | str,
    input_size: Sequence[int] | str | None,
    *,
    batch_size: int,
    dtype: torch.dtype | str,
    optimizer: str,
    training: bool,
) -> Analysis:
    dtype = parse_dtype(dtype)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if isinstance(model, str):
        from ..registry import model_info

        label = model
        size = parse_input_size(input_size if input_size is not None else model_info(model).input_size)
        original = meta_model(model)
    else:
        original = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: analyse the eager module
        if isinstance(original, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            original = original.module
        label = type(original).__name__
        size = parse_input_size(input_size if input_size is not None else (3, 224, 224))

    copy = meta_clone(original, dtype)
    net = copy.model
    shape = (batch_size, *size)
    x = torch.empty(shape, dtype=dtype, device="meta")
    mode = Interceptor(copy.modules)
    mode.seed(x)
    notes: list[str] = []
    saved: dict[tuple[str, int, int], int] | None = None
    saved_total: int | None = None
    try:
        net.eval()
        mode.begin(collect=True)
        try:
            with torch.no_grad(), mode:
                net(x)
        except AnalysisError:
            raise
        except Exception as exc:
            where = "x".join(map(str, size))
            raise AnalysisError(f"{label} cannot run on input {where}: {_first_line(exc)}") from exc
        ran = set(mode.ran)
        if training:
            saved, saved_total = _saved_bytes(copy, mode, shape, dtype, notes)
    finally:
        mode.close()

    layers = layer_stats(mode.rows, mode.fields, x, saved, batch_size, label, copy.sizes)
    named: dict[int, tuple[str, torch.Tensor]] = {}  # as named_parameters(): each tensor once (tied weights once)
    for path, m in copy.modules:
        for key, p in m._parameters.items():
            if p is not None and id(p) not in named:
                named[id(p)] = (f"{path}.{key}" if path else key, p)
    sizes = [copy.sizes[pid] for pid in named]  # (numel, nbytes, requires_grad)
    not_run = _modules_not_run(net, ran)
    run_params = {id(p) for _, m in copy.modules if id(m) in ran for p in m._parameters.values() if p is not None}
    total_params = sum(n for n, _, _ in sizes)
    trainable = sum(n for n, _, g in sizes if g)
    biases = sum(size[0] for (name, _), size in zip(named.values(), sizes) if name.rsplit(".", 1)[-1] == "bias")
    trainable_bytes = sum(b for _, b, g in sizes if g)
    state_tensors, state_scalar_bytes = OPTIMIZERS[optimizer]
    n_trainable_tensors = sum(1 for _, _, g in sizes if g)
    buffers = list({id(b): b for _, m in copy.modules for b in m._buffers.values() if b is not None}.values())
    extra: dict[str, int] = {}
    for s in layers:
        for k, v in s.extra_flops.items():
            extra[k] = extra.get(k, 0) + v
    if mode.rf_unknown:
        notes.append("receptive field treated as global after ops with no receptive-field rule: "
                     + ", ".join(sorted(mode.rf_unknown)))  # fmt: skip
    totals = Totals(
        params=total_params,
        trainable_params=trainable,
        frozen_params=total_params - trainable,
        weights=total_params - biases,
        biases=biases,
        buffers=sum(b.numel() for b in buffers),
        macs=sum(s.macs for s in layers),
        extra_flops=extra,
        activations=x.numel() + sum(s.activations for s in layers if s.new_memory),
        activation_bytes=nbytes(x) + sum(s.activation_bytes for s in layers if s.new_memory),
        param_bytes=sum(b for _, b, _ in sizes),
        buffer_bytes=sum(nbytes(b) for b in buffers),
        grad_bytes=trainable_bytes,
        optimizer_bytes=state_tensors * trainable_bytes + state_scalar_bytes * n_trainable_tensors,
        input_bytes=nbytes(x),
        saved_activation_bytes=saved_total,
        params_not_run=sum(size[0] for pid, size in zip(named, sizes) if pid not in run_params),
    )
    spatial = [s.receptive_field for s in layers if s.receptive_field is not None]
    model_rf = max(spatial, key=lambda f: max(f.size)) if spatial else None
    return Analysis(
        model=label,
        input_size=size,
        batch_size=batch_size,
        dtype=dtype,
        optimizer=optimizer,
        layers=tuple(layers),
        totals=totals,
        receptive_field=model_rf,
        uncounted=dict(mode.uncounted),
        notes=tuple(notes),
        modules_not_run=tuple(not_run),
    )


def _modules_not_run(net: nn.Module, ran: set[int]) -> list[str]:
    """Top-most modules with parameters of which nothing ran (auxiliary heads in eval mode, unused branches)."""
    names: list[str] = []

    def visit(m: nn.Module, path: str) -> tuple[bool, bool]:  # (something in m ran, m holds parameters)
        hit, has_params = id(m) in ran, any(p is not None for p in m._parameters.values())
        children = [(f"{path}.{k}" if path else k, c) for k, c in m._modules.items() if c is not None]
        states = [visit(c, p) for p, c in children]
        hit = hit or any(h for h, _ in states)
        if hit:
            names.extend(p for (p, _), (h, holds) in zip(children, states) if not h and holds)
        return hit, has_params or any(holds for _, holds in states)

    if not visit(net, "")[0]:
        return []
    return names


def _saved_bytes(
    copy: MetaCopy, mode: Interceptor, shape: tuple[int, ...], dtype: torch.dtype, notes: list[str]
) -> tuple[dict[tuple[str, int, int], int] | None, int | None]:
    """Training-mode forward with grad: bytes saved for backward per row key (scaled to ``shape[0]``)."""
    attempts = [(True, shape[0])]
    if shape[0] == 1:
        attempts.append((True, 2))  # batch norm refuses a batch of one value per channel in training mode
    attempts.append((False, shape[0]))  # last resort: eval-mode graph (e.g. data-dependent control flow in train)
    error = ""
    for train_mode, batch in attempts:
        mode.begin(collect=False)
        x = torch.empty((batch, *shape[1:]), dtype=dtype, device="meta")
        exclude = {storage_key(t) for t in (*copy.tensors, x)}
        counter = SavedTensorCounter(mode.current_key, exclude)
        copy.model.train(train_mode)
        try:
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(counter.pack, counter.unpack), mode:
                copy.model(x)
        except Exception as exc:
            error = error or _first_line(exc)
            continue
        finally:
            copy.model.eval()
        scale = shape[0] / batch
        if batch != shape[0]:
            notes.append(f"saved activations measured at batch {batch} and scaled to {shape[0]} ({error})")
        if not train_mode:
            notes.append(f"training-mode forward failed ({error}); saved activations from an eval-mode graph")
        return ({k: round(v * scale) for k, v in counter.bytes.items()}, round(counter.total * scale))
    notes.append(f"no training-memory estimate: the forward with autograd failed ({error})")
    return None, None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
