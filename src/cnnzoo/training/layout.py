"""The memory layout a run trains in, NCHW or channels-last (NHWC), chosen by measuring both on the run itself.

Which layout is faster depends on the machine, the network and the input size: channels-last trained ``resnet20`` at
32 px (batch 128, two cores) 1.57x as fast as NCHW on an AMD Zen 5, 1.27x on an Intel Xeon with AMX, 0.93-1.04x on a
Zen 3 (AVX2); on CUDA it is usually the faster. So a run does what cuDNN's benchmark mode does for convolution
algorithms, one level up: at its start, once the network and the loaders exist, ``choose_layout`` times a few real
training steps (the run's network, loss, optimizer, precision and batch shape, on its device) in both layouts and
trains in the faster.

- **The probe** (``probe_layouts``) runs on copies of the network, each with an optimizer of its own, on a synthetic
  batch of the run's shape (a step's cost does not depend on the pixel values; a real batch from a streamed folder
  would start the loader's workers), inside a fork of the random streams: the run's weights, optimizer and random
  state are untouched, so a probed run is bit-identical to a run with the same layout forced. Each layout gets
  ``WARM_STEPS`` untimed steps (oneDNN/cuDNN set their kernels up), then ``TIMED_STEPS`` steps alternated with the
  other layout's (a change of load hits both alike); each layout's rate is its fastest step, since other jobs only
  ever slow a step down, and on a shared machine they do it in bursts: a two-thread step that meets another busy
  process can take 10-20x as long, which a median of three steps does not outvote (one such burst measured
  channels-last at 58 img/s against NCHW's 1,583, the reverse of their order on the idle machine). Under sustained
  load no count of steps helps: the load average at the probe is recorded, and the header says when it was above
  ``BUSY_LOAD`` per CPU (the rates, and the choice, are then the load's as much as the layouts').
- **bf16 on a CPU that has it natively** (``native_bf16_isa``) and a run that left ``--amp`` unset: the probe also
  times bf16 autocast steps in the chosen layout, alternated with fp32 ones; at ``BF16_SUGGEST`` x or more the header
  suggests ``--amp bf16`` with the measured factor. It never switches precision by itself (bf16 changes the numbers).
- **When it runs** (the rule): a part of the probe runs only when the run has at least ``PAYBACK`` x its steps, so the
  probe costs at most 1/``PAYBACK`` (5%) of the run's steps; layouts commonly differ by 10-60% per step on the CPU, so
  the choice pays it back (the chosen layout's warm-up is not lost: oneDNN's primitive cache and cuDNN's autotuning
  carry over to the run; the other's, a fixed cost of some tenths of a second on the CPU, is). The layouts part
  takes ``2 x (WARM_STEPS + TIMED_STEPS)`` = 8 steps (runs of 160 steps and more), the bf16 part
  ``WARM_STEPS + 2 x TIMED_STEPS`` = 7 more (runs of 300 and more). A shorter run, or one on another device than the
  CPU or CUDA, trains in the device's default layout (``default_channels_last``). On this rule the default digits run
  (264 steps of 25 ms) is about the shortest that probes: on the Xeon above, 1.2 s of probe against 1.18x on 6 s of
  training.
- **What overrides it**: ``--channels-last`` / ``--no-channels-last``; a resumed run keeps the layout it recorded
  (``layout`` in config.json), since an exact resume needs the same kernels.
- Under torchrun every rank probes (the same number of steps, so collectives inside the network, SyncBatchNorm's,
  stay matched) and rank 0's choice is taken by all. With ``--compile`` the probe times eager steps (compiling both
  layouts would cost more than the choice saves); the convolutions it compares are the same kernels.
- **Reproducibility**: the two layouts run different kernels, which round differently, so a run's numbers depend on
  its layout: two runs of the same seed are bit-identical on the CPU when they train in the same layout. The probe's
  choice is a measurement, as noisy as the machine's load (on a machine shared with other jobs two runs may choose
  differently); config.json says which layout a run used, and the flag forces it.

The choice is ``Layout``: its ``record()`` goes into config.json (``layout``: ``"nchw"`` or ``"channels_last"``, and
``layout_probe``: how it was chosen, with the probe's rates), its ``lines()`` into the run's header.
"""

from __future__ import annotations

import copy
import os
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..device import default_channels_last

WARM_STEPS = 1  # untimed steps per contender: kernel selection, oneDNN primitive creation, cuDNN autotuning
TIMED_STEPS = 3  # timed steps per contender, alternated; the fastest counts
PAYBACK = 20  # a part of the probe runs when the run has at least PAYBACK x its steps (it costs <= 5% of them)
LAYOUT_STEPS = 2 * (WARM_STEPS + TIMED_STEPS)
BF16_STEPS = WARM_STEPS + 2 * TIMED_STEPS  # bf16 steps, alternated with more fp32 steps of the chosen layout
BF16_SUGGEST = 1.3  # the header suggests --amp bf16 when the probe measured it at least this much faster
PROBED_DEVICES = ("cpu", "cuda")
BUSY_LOAD = 0.6  # a 1-minute load average above this per CPU: other jobs shared the probe's cores

NAMES = {False: "nchw", True: "channels_last"}  # config.json's words
TITLES = {False: "NCHW", True: "channels-last"}  # the header's

Step = Callable[[torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class Timing:
    """What the probe measured: images per second of the fastest training step in each layout (``nchw``,
    ``channels_last``; ``bf16``: in the faster layout, when timed), bf16's rate over fp32's from the steps alternated
    with it, and the steps taken."""

    images_per_s: dict[str, float]
    bf16_factor: float | None
    steps: int


@dataclass(frozen=True)
class Layout:
    """The layout a run trains in and how it was chosen: ``by`` is "probe", "flag", "resume" or "default"."""

    channels_last: bool
    by: str
    timing: Timing | None = None  # the probe's
    seconds: float = 0.0  # the probe's wall time
    load: tuple[float, int] | None = None  # the 1-minute load average at the probe's start, and the CPUs
    note: str = ""  # flag: which one; default: why nothing was measured; resume: how the run had chosen
    bf16_isa: tuple[str, ...] = ()  # the CPU's native bf16 instruction sets, when the probe timed bf16
    recorded: dict[str, Any] = field(default_factory=dict)  # resume: the run's own layout_probe, kept as it was

    @property
    def name(self) -> str:
        return NAMES[self.channels_last]

    def record(self) -> dict[str, Any]:
        """config.json's ``layout`` and ``layout_probe``."""
        if self.by == "resume":
            return {"layout": self.name, "layout_probe": self.recorded}
        probe: dict[str, Any] = {"by": self.by}
        if self.note:
            probe["note"] = self.note
        if self.timing is not None:
            probe.update(images_per_s={k: round(v, 1) for k, v in self.timing.images_per_s.items()},
                         seconds=round(self.seconds, 3), steps=self.timing.steps)
            if self.load is not None:
                probe.update(load_average=round(self.load[0], 2), cpus=self.load[1])
            if self.timing.bf16_factor is not None:
                probe.update(bf16_factor=round(self.timing.bf16_factor, 3), bf16_isa=list(self.bf16_isa))
        return {"layout": self.name, "layout_probe": probe}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Layout | None:
        """The layout a run recorded in config.json (a run from before the probe: its resolved ``channels_last``)."""
        name = record.get("layout")
        if name in NAMES.values():
            probe = dict(record.get("layout_probe") or {})
            return cls(name == NAMES[True], "resume", note=f"chosen by {probe.get('by', 'its first session')}",
                       recorded=probe)
        resolved = record.get("channels_last")
        if not isinstance(resolved, bool):
            return None
        return cls(resolved, "resume", note="recorded as channels_last", recorded={"by": "channels_last"})

    def busy(self) -> str:
        """``, under a load average of L on N CPUs`` when other jobs shared the probe's cores, else nothing."""
        if self.load is None or self.load[0] <= BUSY_LOAD * self.load[1]:
            return ""
        return f", under a load average of {self.load[0]:.1f} on {self.load[1]} CPUs"

    def lines(self) -> list[str]:
        """The header's lines: the layout, the rates behind it, a bf16 suggestion when it is worth one."""
        title = TITLES[self.channels_last]
        if self.by == "flag":
            return [f"layout: {title} ({self.note})"]
        if self.by == "default":
            return [f"layout: {title}, the device's default ({self.note})"]
        if self.by == "resume" or self.timing is None:
            return [f"layout: {title}, the run's own (config.json, {self.note}; an exact resume needs it)"]
        rates = self.timing.images_per_s
        mine, theirs = rates[self.name], rates[NAMES[not self.channels_last]]
        lines = [f"layout: {title}, measured {mine:,.0f} img/s against {TITLES[not self.channels_last]} "
                 f"{theirs:,.0f} img/s ({mine / theirs:.2f}x; a probe of {self.timing.steps} steps, "
                 f"{self.seconds:.1f} s{self.busy()})"]
        factor = self.timing.bf16_factor
        if factor is not None and factor >= BF16_SUGGEST:
            lines.append(f"precision: fp32; bf16 trained {factor:.2f}x faster in the probe on this CPU (native "
                         f"{', '.join(self.bf16_isa)}): try --amp bf16")
        return lines


def probe_plan(device: torch.device, total_steps: int, *, bf16: bool) -> tuple[bool, bool, str]:
    """(probe the layouts, time bf16 too, why not when not): the rule of the module's doc."""
    if device.type not in PROBED_DEVICES:
        return False, False, f"the probe runs on {' and '.join(PROBED_DEVICES)}, not {device.type}"
    if total_steps < PAYBACK * LAYOUT_STEPS:
        return False, False, (f"{total_steps:,} steps: too short to pay back a probe, which needs "
                              f"{PAYBACK * LAYOUT_STEPS:,}")
    return True, bf16 and total_steps >= PAYBACK * (LAYOUT_STEPS + BF16_STEPS), ""


def choose_layout(
    *, forced: bool | None, recorded: dict[str, Any] | None, device: torch.device, total_steps: int, net: nn.Module,
    make_step: Callable[[nn.Module, torch.dtype | None], Step], batch_shape: tuple[int, ...], num_classes: int,
    amp_dtype: torch.dtype | None, bf16_isa: list[str], broadcast: Callable[[Any], Any] = lambda obj: obj,
) -> Layout:
    """The layout of a run: ``forced`` (the flag), else the layout of a resumed run's ``recorded`` config, else the
    probe's choice when the run is long enough (``probe_plan``), else the device's default.

    ``make_step(copy, amp_dtype)``: one of the run's training steps on ``copy`` (with an optimizer of its own);
    ``bf16_isa``: the CPU's native bf16 sets when the run may be told about bf16 (CPU, ``--amp`` unset), else empty;
    ``broadcast``: rank 0's value on every rank (torchrun)."""
    previous = Layout.from_record(recorded) if recorded is not None else None
    if forced is not None:
        if previous is not None and previous.channels_last != forced:
            warnings.warn(f"--{'' if forced else 'no-'}channels-last: the run trained in "
                          f"{TITLES[previous.channels_last]} so far; the resumed run is not bit-identical to one "
                          "that was never interrupted", stacklevel=3)
        return Layout(forced, "flag", note=f"--{'' if forced else 'no-'}channels-last")
    if previous is not None:
        return previous
    layouts, bf16, why_not = probe_plan(device, total_steps, bf16=bool(bf16_isa))
    if not layouts:
        return Layout(default_channels_last(device), "default", note=why_not)
    load = broadcast(load_average())
    start = time.perf_counter()
    timing = broadcast(probe_layouts(net, make_step, batch_shape=batch_shape, num_classes=num_classes,
                                     device=device, amp_dtype=amp_dtype, bf16=bf16))
    rates = timing.images_per_s
    return Layout(rates["channels_last"] > rates["nchw"], "probe", timing=timing, seconds=time.perf_counter() - start,
                  load=load, bf16_isa=tuple(bf16_isa) if bf16 else ())


def load_average() -> tuple[float, int] | None:
    """The 1-minute load average and the CPUs this process may use (None where the system does not say)."""
    try:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return os.getloadavg()[0], cpus
    except (OSError, AttributeError):  # no load average (Windows)
        return None


def probe_layouts(
    net: nn.Module, make_step: Callable[[nn.Module, torch.dtype | None], Step], *, batch_shape: tuple[int, ...],
    num_classes: int, device: torch.device, amp_dtype: torch.dtype | None, bf16: bool = False,
) -> Timing:
    """The run's training step timed in each layout on copies of ``net`` (and, with ``bf16``, in bf16 in the faster
    layout, alternated with more fp32 steps there); the random streams (torch's CPU and CUDA ones, Python's) are
    restored afterwards."""
    python_state = random.getstate()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            generator = torch.Generator().manual_seed(0)  # the batch: private numbers, not the run's streams
            x = torch.randn(batch_shape, generator=generator).to(device)
            y = torch.randint(0, num_classes, batch_shape[:1], generator=generator).to(device)
            contenders = {NAMES[cl]: _Contender(net, make_step, x, y, cl, amp_dtype, device) for cl in (False, True)}
            times = _alternate(contenders)
            rates = {name: len(x) / min(t) for name, t in times.items()}
            factor, steps = None, LAYOUT_STEPS
            if bf16:
                name = max(rates, key=rates.get)
                chosen = contenders[name]
                pair = {name: chosen, "bf16": _Contender(net, make_step, x, y, chosen.channels_last, torch.bfloat16,
                                                         device)}
                more = _alternate(pair, warm=("bf16",))  # the fp32 copy is warm already
                factor = min(more[name]) / min(more["bf16"])
                rates["bf16"] = len(x) / min(more["bf16"])
                steps += BF16_STEPS
                del pair, chosen
            del contenders
    finally:
        random.setstate(python_state)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the copies' memory goes back before the run allocates its own
    return Timing(rates, factor, steps)


class _Contender:
    """A copy of the network in one layout and precision, with its own optimizer and its batch in that layout."""

    def __init__(self, net: nn.Module, make_step: Callable[[nn.Module, torch.dtype | None], Step], x: torch.Tensor,
                 y: torch.Tensor, channels_last: bool, amp_dtype: torch.dtype | None, device: torch.device) -> None:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.channels_last, self.device = channels_last, device
        self.net = copy.deepcopy(net).to(memory_format=fmt)
        self.step = make_step(self.net, amp_dtype)
        self.x, self.y = x.contiguous(memory_format=fmt), y

    def __call__(self) -> float:
        """One step; its wall seconds (the device caught up)."""
        start = time.perf_counter()
        self.step(self.x, self.y)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


def _alternate(contenders: dict[str, _Contender], warm: tuple[str, ...] | None = None) -> dict[str, list[float]]:
    """``WARM_STEPS`` untimed steps of the ``warm`` contenders (default: all), then ``TIMED_STEPS`` rounds of one
    timed step each, in an order rotated every round (no contender always runs first)."""
    names = list(contenders)
    for name in names if warm is None else warm:
        for _ in range(WARM_STEPS):
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(TIMED_STEPS):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(contenders[name]())
    return times


__all__ = ["BF16_STEPS", "BF16_SUGGEST", "BUSY_LOAD", "LAYOUT_STEPS", "NAMES", "PAYBACK", "TIMED_STEPS", "WARM_STEPS",
           "Layout", "Timing", "choose_layout", "load_average", "probe_layouts", "probe_plan"]
