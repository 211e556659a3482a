"""Lab-sized variants of registered networks: the same family and code, a smaller spec.

The smoke scale must train each network in seconds on a CPU, so some experiments use a shallower or narrower
member of a registered family. A variant is the registered network's own spec (the ``spec`` its registration
passes to the builder, :func:`cnnzoo.registry.model_entry`) with only its size changed, built by
``create_model(base, spec={field: value})``: blocks, layers and initialisation are the paper network's. The changes
are JSON, so a variant's run records ``model: base`` and ``model_kwargs: {"spec": ...}`` in its config.json and
``cnnzoo eval``/``predict``/``train --resume`` rebuild it like any registered network. Every experiment's protocol
names the variant it trains and what was changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..registry import model_entry


@dataclass(frozen=True)
class Variant:
    """``label``, the registered ``base`` network, what differs from it in words and as ``spec`` field changes."""

    label: str
    base: str
    change: str
    spec_changes: dict[str, Any]

    def model_kwargs(self, **options: Any) -> dict[str, Any]:
        """``create_model(base, **...)`` options that build this variant (and ``options``)."""
        return {"spec": self.spec_changes, **options}


def _spec(base: str) -> Any:
    return model_entry(base).kwargs["spec"]


def resnet_depth(base: str, blocks_per_stage: int, label: str) -> Variant:
    """A CIFAR ResNet-family net (three stages) with ``blocks_per_stage`` blocks each: depth 6n + 2 for basic
    blocks (He et al. §4.2)."""
    spec = _spec(base)
    depths = (blocks_per_stage,) * len(spec.depths)
    return Variant(label, base, f"{blocks_per_stage} blocks per stage instead of {spec.depths[0]}",
                   {"depths": list(depths)})


def wide_resnet(base: str, depth: int, width_factor: int, label: str) -> Variant:
    """WRN-d-k (Zagoruyko & Komodakis Table 1) from a registered WRN: (d - 4) / 6 units per group, widths 16k,
    32k, 64k."""
    spec = _spec(base)
    n = (depth - 4) // 6
    widths = (16 * width_factor, 32 * width_factor, 64 * width_factor)
    return Variant(label, base, f"depth {depth}, width factor {width_factor} ({n} units per group, widths "
                   f"{'/'.join(map(str, widths))})", {"depths": [n, n, n], "widths": list(widths)})


def densenet_depth(base: str, depth: int, label: str) -> Variant:
    """A CIFAR DenseNet-BC of ``depth`` layers: (depth - 4) / 6 bottleneck layers per block (Huang et al. §4.2)."""
    spec = _spec(base)
    layers = (depth - 4) // 6
    return Variant(label, base, f"depth {depth} ({layers} bottleneck layers per block instead of "
                   f"{spec.block_layers[0]})", {"block_layers": [layers] * len(spec.block_layers)})


def fractalnet_blocks(base: str, widths: tuple[int, ...], label: str) -> Variant:
    """A FractalNet with ``len(widths)`` blocks of these widths, the registered columns, and the first blocks'
    dropout rates (Larsson et al. §4)."""
    spec = _spec(base)
    rates = spec.dropout_rates[: len(widths)]
    return Variant(label, base, f"{len(widths)} blocks of widths {'/'.join(map(str, widths))} (dropout "
                   f"{'/'.join(f'{r:g}' for r in rates)}) instead of {len(spec.widths)} of "
                   f"{'/'.join(map(str, spec.widths))}", {"widths": list(widths), "dropout_rates": list(rates)})
