"""The numbers of a report: one :class:`LayerStat` per layer call, and the whole model's :class:`Totals`.

Units are in the names: ``macs`` (multiply-adds; ``flops = 2 * macs``), ``activations`` (values, what the lecture
calls "memory"), ``*_bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .receptive_field import ReceptiveField


@dataclass(frozen=True)
class LayerStat:
    """One call of a leaf module, or one run of ops a container performs itself (``cat``, ``add``, ``flatten``).

    Counts are for the whole batch; ``in_shape`` (of the first op's first input) and ``out_shape`` are per sample
    (``[C, H, W]``). ``receptive_field`` is ``None`` when
    the output has no spatial layout left (it sees the whole image) or does not depend on the image.
    """

    name: str
    kind: str
    call: int
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...]
    activations: int  # values in the output ("memory" in the lecture's tables)
    activation_bytes: int
    new_memory: bool  # False when the output is a view or an in-place result of an earlier tensor
    weights: int
    biases: int
    macs: int
    extra_flops: dict[str, int]
    saved_bytes: int  # bytes autograd keeps for backward (training mode), counted once per storage
    receptive_field: ReceptiveField | None
    ops: tuple[str, ...]
    uncounted: tuple[str, ...] = ()
    spec: tuple[Any, ...] | None = None

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "out_shape": list(self.out_shape),
            "activations": self.activations,
            "activation_bytes": self.activation_bytes,
            "params": self.params,
            "macs": self.macs,
            "receptive_field": None if self.receptive_field is None else self.receptive_field.to_dict(),
            "call": self.call,
            "weights": self.weights,
            "biases": self.biases,
            "flops": self.flops,
            "extra_flops": dict(self.extra_flops),
            "saved_bytes": self.saved_bytes,
            "new_memory": self.new_memory,
            "uncounted": list(self.uncounted),
        }


@dataclass(frozen=True)
class Totals:
    """Whole-model numbers. Parameters are counted once per tensor (shared and tied weights once)."""

    params: int
    trainable_params: int
    frozen_params: int
    weights: int
    biases: int
    buffers: int
    macs: int
    extra_flops: dict[str, int]
    activations: int  # values in every newly allocated layer output, input included (the lecture's TOTAL memory)
    activation_bytes: int
    param_bytes: int
    buffer_bytes: int
    grad_bytes: int
    optimizer_bytes: int
    input_bytes: int
    saved_activation_bytes: int | None  # None when the training pass was not run
    params_not_run: int  # parameters of modules this forward never called (e.g. auxiliary heads in eval mode)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def train_memory_bytes(self) -> int | None:
        """params + buffers + gradients + optimizer state + saved activations + input batch."""
        if self.saved_activation_bytes is None:
            return None
        return (self.param_bytes + self.buffer_bytes + self.grad_bytes + self.optimizer_bytes
                + self.saved_activation_bytes + self.input_bytes)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "activations": self.activations,
            "activation_bytes": self.activation_bytes,
            "train_memory_bytes": self.train_memory_bytes,
            "trainable_params": self.trainable_params,
            "frozen_params": self.frozen_params,
            "weights": self.weights,
            "biases": self.biases,
            "buffers": self.buffers,
            "extra_flops": dict(self.extra_flops),
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "grad_bytes": self.grad_bytes,
            "optimizer_bytes": self.optimizer_bytes,
            "input_bytes": self.input_bytes,
            "saved_activation_bytes": self.saved_activation_bytes,
            "params_not_run": self.params_not_run,
        }
