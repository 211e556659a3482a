"""The engine: run a model on the meta device under a dispatch-level interceptor and record every aten op.

Nothing the size of the input is ever allocated: the model runs on a *meta* copy (shapes, strides and dtypes, no
data; :func:`.meta.meta_clone`), so VGG16 at 4096x4096 costs what it costs at 224, and the model passed in is never
touched.

Attribution: wrappers around ``forward`` of every module of the copy (instance attributes: cheaper than hooks, which
send every call down ``Module._call_impl``'s slow path) keep a stack of module calls. An op belongs to the innermost
module running. A *leaf* module (no children) gets one row per call; ops a container runs itself (``torch.cat``,
``+``, ``torch.flatten`` in its ``forward``) form a row of that container per uninterrupted run of them.

Speed: shape inference for some ops on meta goes through slow Python meta kernels (batch norm: 1-2 ms a call).
The hot ones have direct shape functions (:data:`.meta.FAST`); every other op runs its stock meta kernel.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from . import counts
from . import receptive_field as rf_mod
from .meta import FAST
from .rows import OpRow, op_spec

_Tensor = torch.Tensor


class _Frame:
    __slots__ = ("module", "path", "call", "leaf", "segment", "row")

    def __init__(self, module: nn.Module, path: str, call: int, leaf: bool) -> None:
        self.module = module
        self.path = path
        self.call = call
        self.leaf = leaf
        self.segment = 0
        self.row: OpRow | None = None


class Interceptor(TorchDispatchMode):
    """Records, per row, every aten op the model runs: MACs, extra FLOPs, unknown ops, receptive fields.

    It wraps ``forward`` of every module in ``modules`` (of a clone the caller owns: wrappers are instance
    attributes, cheaper than hooks, removed by :meth:`close`). Use it as a context manager around ``model(x)``; call
    :meth:`begin` before each pass. With ``collect=False`` it only tracks the module stack (for
    :meth:`current_key`) and serves fast meta kernels.
    """

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # TorchDispatchMode wraps a subclass's __torch_dispatch__ in torch._disable_dynamo unless this returns False
        # (torch's documented opt-out): the wrapper imports torch._dynamo at the first op (about a second) and adds a
        # call per op. The analyzer runs the eager module, never under torch.compile: there is nothing to disable.
        return False

    def __init__(self, modules: list[tuple[str, nn.Module]]) -> None:
        super().__init__()
        self.collect = True
        self.rows: list[OpRow] = []
        self.stack: list[_Frame] = []
        self.calls: dict[int, int] = {}
        self.ran: set[int] = set()
        self.fields: dict[int, rf_mod.Field] = {}
        self.alive: list[Any] = []  # keeps every traced tensor alive, so ids and storage keys stay unique
        self.rf_unknown: dict[str, int] = {}
        self.uncounted: dict[str, int] = {}
        self._names: dict[Any, str] = {}
        self._wrapped: list[nn.Module] = []
        for path, module in modules:
            self._wrap(module, path, len(module._modules) == 0)

    def _wrap(self, module: nn.Module, path: str, leaf: bool) -> None:
        forward = module.forward
        enter, leave = self._enter, self._leave

        def traced_forward(*args: Any, **kwargs: Any) -> Any:
            frame = enter(module, path, leaf)
            out = forward(*args, **kwargs)
            leave(frame, out)
            return out

        module.forward = traced_forward
        self._wrapped.append(module)

    def close(self) -> None:
        """Remove the ``forward`` wrappers (they reference this object)."""
        for module in self._wrapped:
            del module.forward
        self._wrapped.clear()

    def begin(self, *, collect: bool) -> None:
        """Start a pass: call numbering restarts, so rows of different passes share keys."""
        self.collect = collect
        self.stack.clear()
        self.calls.clear()

    # ---- module attribution -------------------------------------------------------------------------------------
    def _enter(self, module: nn.Module, path: str, leaf: bool) -> _Frame:
        stack = self.stack
        if stack:
            parent = stack[-1]
            parent.segment += 1
            if not parent.leaf:
                parent.row = None
        key = id(module)
        call = self.calls[key] = self.calls.get(key, 0) + 1
        frame = _Frame(module, path, call, leaf)
        if leaf and self.collect:
            frame.row = row = OpRow((path, call, 0), module, True)
            self.rows.append(row)
        stack.append(frame)
        return frame

    def _leave(self, frame: _Frame, output: Any) -> None:
        stack = self.stack
        stack.pop()
        self.ran.add(id(frame.module))
        if frame.leaf and frame.row is not None:
            frame.row.output = output
        if stack:
            parent = stack[-1]
            parent.segment += 1
            if not parent.leaf:
                parent.row = None

    def current_key(self) -> tuple[str, int, int]:
        if not self.stack:
            return ("", 1, 0)
        frame = self.stack[-1]
        return (frame.path, frame.call, 0 if frame.leaf else frame.segment)

    def _current_row(self) -> OpRow:
        if not self.stack:  # an op outside any module call (cannot happen through model(x)); keep it visible
            self.stack.append(_Frame(nn.Module(), "", 1, False))
        frame = self.stack[-1]
        row = frame.row
        if row is None:
            frame.row = row = OpRow((frame.path, frame.call, frame.segment), frame.module, False)
            self.rows.append(row)
        return row

    # ---- dispatch ---------------------------------------------------------------------------------------------
    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = self._run(func, args, kwargs)
        if self.collect:
            self._record(func, args, kwargs, out)
        return out

    def _run(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        fast = FAST.get(func)
        if fast is not None:
            out = fast(args, kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)

    def _record(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        name = self._names.get(func)
        if name is None:
            name = self._names[func] = func._overloadpacket.__name__
        row = self._current_row()
        row.ops.append(name)
        if not row.leaf:
            row.output = out  # a container's run of ops outputs what its last op returns
        if row.in_shape is None and args:
            first = args[0]
            if isinstance(first, (list, tuple)) and first and isinstance(first[0], torch.Tensor):
                first = first[0]
            if isinstance(first, torch.Tensor):
                row.in_shape = tuple(first.shape)
        cost = counts.op_cost(name, args, kwargs, out)
        if cost is None:
            row.uncounted.append(name)
            self.uncounted[name] = self.uncounted.get(name, 0) + 1
        else:
            macs, extra = cost
            if macs:
                row.macs += macs
                if row.spec is None:
                    row.spec = op_spec(name, args, kwargs)
            for category, flops in extra.items():
                row.extra_flops[category] = row.extra_flops.get(category, 0) + flops
            if row.spec is None and name in counts.POOL_OPS:
                row.spec = op_spec(name, args, kwargs)
        self._propagate(name, args, kwargs, out)

    def _propagate(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        fields = self.fields
        if isinstance(out, torch.Tensor):
            outs = [out]
        elif isinstance(out, (tuple, list)):
            outs = [t for t in out if isinstance(t, torch.Tensor)]
        else:
            return
        self.alive.extend(outs)
        inputs = [f for f in (fields.get(id(t)) for t in _tensors(args)) if f is not None]
        if kwargs:
            inputs += [f for f in (fields.get(id(t)) for t in _tensors(kwargs.values())) if f is not None]
        if not inputs:
            return
        for t in outs:
            value, known = rf_mod.propagate(name, args, kwargs, t, inputs)
            if not known:
                self.rf_unknown[name] = self.rf_unknown.get(name, 0) + 1
            fields[id(t)] = value

    def seed(self, x: torch.Tensor) -> None:
        """Mark ``x`` as the image: receptive field 1x1 (only for N x C x H x W inputs)."""
        self.alive.append(x)
        if x.dim() == 4:
            self.fields[id(x)] = rf_mod.INPUT

    def field_of(self, t: Any) -> rf_mod.Field | None:
        return self.fields.get(id(t)) if isinstance(t, torch.Tensor) else None


def _tensors(values: Any) -> Iterator[torch.Tensor]:
    for v in values:
        if isinstance(v, _Tensor):
            yield v
        elif (type(v) is list or type(v) is tuple) and v and type(v[0]) is not int:  # int lists: sizes, strides
            for w in v:
                if isinstance(w, _Tensor):
                    yield w
