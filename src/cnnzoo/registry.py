"""The model registry: a registered name builds the paper's network.

A family module registers each of its names once, with the exact parameter count the build must have and the
numbers its paper reports. Tests are generated from this table, so registering a model is enough to get it
forward/backward/parameter-count tested.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from torch import nn

from .checkpoint import MAX_COUNT  # the largest class or channel count: beyond it a layer's size overflows
from .errors import UnknownNameError, UserError
from .weights import load_weights


@dataclass(frozen=True)
class PaperResult:
    """One number a paper (or its official code) reports, with where it comes from."""

    metric: str  # e.g. "top5_error_pct", "top1_error_pct", "params", "macs"
    value: float
    dataset: str  # e.g. "ImageNet-2012 val, 10-crop", "CIFAR-10 test (+aug)"
    source: str  # e.g. "He et al. 2016, Table 6"
    verified: bool = True  # False: taken from a secondary source, not yet checked against the cited table


_SCALES = {"": 0, "K": 3, "M": 6, "G": 9}
_PRINTED = re.compile(r"(?P<number>([0-9]{1,3}(,[0-9]{3})+|[0-9]+)(\.[0-9]+)?(e[+-]?[0-9]+)?)(?P<scale>[KMG]?)")


@dataclass(frozen=True)
class PrintedNumber:
    """A number as a paper prints it, and the precision the print implies."""

    value: float
    tolerance: float  # half a unit of the last printed digit: "1.7M" is 1.7e6 +- 0.05e6, "61,100,840" exact +- 0.5


def printed_number(text: str) -> PrintedNumber:
    """Read a paper's number as printed: digits with optional thousands commas, decimals and exponent, and an
    optional K/M/G scale ("1.7M", "0.27M", "60M", "3.6e9", "0.714G", "61,100,840"). Trailing zeros count: "1.0M"
    is precise to 0.05M where "1M" is precise to 0.5M."""
    match = _PRINTED.fullmatch(text)
    if match is None:
        raise ValueError(f"not a printed number: {text!r} (e.g. '1.7M', '3.6e9', '61,100,840')")
    number = Decimal(match["number"].replace(",", "")).scaleb(_SCALES[match["scale"]])
    last_digit = Decimal(1).scaleb(number.as_tuple().exponent)
    return PrintedNumber(float(number), float(last_digit / 2))


@dataclass(frozen=True)
class ModelInfo:
    """What cnnzoo knows about one registered network.

    ``params`` is the exact number of trainable parameters this build has at ``num_classes`` classes and 3 input
    channels (batch-norm running statistics excluded). The test suite asserts it.
    """

    name: str
    family: str
    paper: str  # citation, e.g. "He, Zhang, Ren, Sun. Deep Residual Learning... CVPR 2016 (arXiv:1512.03385)"
    input_size: tuple[int, int, int]  # (C, H, W) the paper uses
    num_classes: int
    params: int  # exact count of this build at num_classes (asserted by the tests)
    description: str = ""
    min_size: int | None = None  # smallest H = W the network accepts; None means input_size's H
    # as the paper prints it (often rounded: "1.7M"), with paper_params_source; `printed_number` reads it
    paper_params: str | None = None
    paper_params_source: str | None = None
    paper_params_verified: bool = True  # False: paper_params not yet checked against the cited table
    # the part of this build that the paper's figure counts, exactly, where it is not all of ``params``
    comparable_params: int | None = None
    comparable_params_note: str | None = None  # what comparable_params counts, e.g. "without the auxiliary heads"
    # multiply-adds as printed ("3.8e9"; 1 MAC = 1 multiply + 1 add; FLOPs = 2 x MACs), at ``input_size``
    paper_macs: str | None = None
    paper_macs_source: str | None = None
    paper_macs_verified: bool = True  # False: paper_macs not yet checked against the cited table
    results: tuple[PaperResult, ...] = ()
    deviations: tuple[str, ...] = ()  # every documented difference from the paper
    torchvision: str | None = None  # name of the torchvision builder whose state dicts this variant loads
    recipe: str | None = None  # name of the default training recipe
    aux_outputs: int = 0  # extra outputs returned in training mode (GoogLeNet's auxiliary heads)

    def __post_init__(self) -> None:
        for printed in (self.paper_params, self.paper_macs):
            if printed is not None:
                printed_number(printed)  # a misprint fails at registration

    @classmethod
    def row(cls, shared: Mapping[str, Any], **fields: Any) -> ModelInfo:
        """One registration row: the fields all rows of a family share (``shared``: family, paper, input size,
        classes, recipe ...), then the row's own, which may override a shared one."""
        return cls(**{**shared, **fields})

    @property
    def test_size(self) -> int:
        """The smallest valid square input side: what the tests use."""
        return self.min_size if self.min_size is not None else self.input_size[1]

    def describe_lines(self) -> list[str]:
        """What ``cnnzoo info`` prints, one line each; unverified paper numbers say so."""
        c, h, w = self.input_size
        lines = [f"{self.name}  ({self.family})", f"  paper:        {self.paper}"]
        if self.description:
            lines.append(f"  what:         {self.description}")
        lines += [
            f"  input:        {c}x{h}x{w} (smallest accepted side: {self.test_size})",
            f"  classes:      {self.num_classes}",
            f"  params:       {self.params:,} (exact, this build)",
        ]
        if self.comparable_params is not None:
            lines.append(f"  comparable:   {self.comparable_params:,} ({self.comparable_params_note})")
        if self.paper_params is not None:
            lines.append(
                f"  paper params: {self.paper_params}  [{self.paper_params_source}]"
                + _unverified(self.paper_params_verified)
            )
        if self.paper_macs is not None:
            lines.append(
                f"  paper MACs:   {self.paper_macs}  [{self.paper_macs_source}] (FLOPs = 2 x MACs)"
                + _unverified(self.paper_macs_verified)
            )
        if self.torchvision:
            lines.append(f"  loads torchvision weights of: torchvision.models.{self.torchvision}")
        if self.recipe:
            lines.append(f"  default recipe: {self.recipe}")
        if self.results:
            lines.append("  paper results:")
            lines += [
                f"    {r.metric} = {r.value:g} on {r.dataset}  [{r.source}]" + _unverified(r.verified)
                for r in self.results
            ]
        lines.append("  deviations from the paper:" + ("" if self.deviations else " none"))
        lines += [f"    - {d}" for d in self.deviations]
        return lines


def _unverified(verified: bool) -> str:
    return "" if verified else "  (not verified against the cited table)"


@dataclass(frozen=True)
class Entry:
    builder: Callable[..., nn.Module]
    info: ModelInfo
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    torchvision_key_map: Callable[[dict[str, Any]], dict[str, Any]] | None = None


_REGISTRY: dict[str, Entry] = {}


class ModelArgumentError(UserError, ValueError):
    """An argument of :func:`create_model` outside its valid range (``num_classes=0``, ``in_channels=0``)."""


def register_model(
    builder: Callable[..., nn.Module],
    info: ModelInfo,
    *,
    torchvision_key_map: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    **kwargs: Any,
) -> None:
    """Register ``info.name``: ``builder(num_classes=..., in_channels=..., **kwargs, **overrides)`` builds it.

    ``torchvision_key_map`` turns a torchvision state dict into this model's keys (torchvision-compatible variants).
    """
    if info.name in _REGISTRY:
        raise ValueError(f"model {info.name!r} is already registered")
    _REGISTRY[info.name] = Entry(builder, info, dict(kwargs), torchvision_key_map)


def model_entry(name: str) -> Entry:
    """The registration of ``name`` (builder, info, fixed kwargs, torchvision key map); unknown names suggest close
    ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `cnnzoo list`"
        raise UnknownNameError(f"unknown model {name!r}{hint}") from None


def list_models(pattern: str = "*", *, family: str | None = None) -> list[str]:
    """Registered names matching the fnmatch ``pattern`` (and ``family``, if given), sorted."""
    return sorted(
        name
        for name, entry in _REGISTRY.items()
        if fnmatch.fnmatchcase(name, pattern) and (family is None or entry.info.family == family)
    )


def list_families() -> list[str]:
    return sorted({entry.info.family for entry in _REGISTRY.values()})


def model_info(name: str) -> ModelInfo:
    return model_entry(name).info


def smallest_side(name: str, model_kwargs: Mapping[str, Any] | None = None) -> int | None:
    """The smallest square input side the network ``name``, built with ``model_kwargs``, accepts: its registered
    ``test_size``; None when ``model_kwargs`` change its spec (the lab's variants), since a changed network has no
    registered side: a side too small for it fails at its first forward, with the shapes that did not fit."""
    if model_kwargs and "spec" in model_kwargs:
        return None
    return model_info(name).test_size


def changed_spec(name: str, spec: Any, changes: Mapping[str, Any]) -> Any:
    """The registered ``spec`` of ``name`` with ``changes`` to its fields (lists become the tuples a spec holds).

    A change keeps each field's kind: a whole number stays a whole number of at least 1 (in a spec they count blocks,
    channels, layers or name fire modules from 1), a rate stays a finite number, a flag a flag, a word a word, and a
    list stays a list of its elements' kind (of any length); fields that hold layer descriptions or classes are not
    changed from JSON. What still does not fit (lists of different lengths where a family pairs them) is refused by
    the builder, in one line too."""
    if not dataclasses.is_dataclass(spec):
        raise ModelArgumentError(f"{name}: its family has no spec to change")
    fields = {f.name for f in dataclasses.fields(spec)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise UnknownNameError(f"{name}: its spec has no field {', '.join(unknown)}; "
                               f"fields: {', '.join(sorted(fields))}")

    def like(field: str, value: Any, current: Any) -> Any:
        def refuse(expected: str) -> ModelArgumentError:
            return ModelArgumentError(f"{name}: spec field {field}: expected {expected}, got {value!r}")

        if isinstance(current, tuple):
            template = current[0] if current else 1  # an empty list of SqueezeNet's fire numbers
            if not isinstance(template, (int, float, str)):
                raise ModelArgumentError(f"{name}: spec field {field} holds {type(template).__name__} values; it "
                                         "cannot be changed from JSON")
            if not isinstance(value, (list, tuple)):
                raise refuse("a list")
            return tuple(like(field, v, template) for v in value)
        if value is None and current is None:
            return None
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise refuse("true or false")
        elif isinstance(current, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise refuse("a whole number >= 1")
        elif isinstance(current, float) or current is None and isinstance(value, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise refuse("a finite number")
            value = float(value)
        elif isinstance(current, str) or current is None and isinstance(value, str):
            if not isinstance(value, str):
                raise refuse("a word")
        else:
            raise ModelArgumentError(f"{name}: spec field {field} holds {type(current).__name__} values; it cannot "
                                     "be changed from JSON")
        return value

    return dataclasses.replace(spec, **{k: like(k, v, getattr(spec, k)) for k, v in changes.items()})


def _count_arg(name: str, arg: str, value: Any) -> int:
    """``value`` as an int if it is a whole number in 1..MAX_COUNT, else one clear line."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= MAX_COUNT:
        raise ModelArgumentError(f"{name}: {arg} must be a whole number between 1 and {MAX_COUNT:,}, got {value!r}")
    return int(value)


def create_model(
    name: str,
    *,
    num_classes: int | None = None,
    in_channels: int = 3,
    weights: Any = None,
    **overrides: Any,
) -> nn.Module:
    """Build the registered network ``name``.

    Args:
        num_classes: classifier outputs (default: the paper's, ``model_info(name).num_classes``).
        in_channels: input image channels.
        weights: a path (``.safetensors``, or a ``.pth``/``.pt`` read with ``weights_only=True``) or a state dict;
            either a cnnzoo checkpoint or, for torchvision-compatible variants, a torchvision state dict.
        overrides: keyword options of the family's class (e.g. ``drop_path_rate``, ``dropout``). ``spec`` given as a
            mapping changes fields of the registered spec (``spec={"depths": [3, 3, 3]}``: ResNet-20's code with
            another depth); JSON-like values, so a run of such a network records it in ``config.json`` and
            ``cnnzoo eval`` rebuilds it.

    ``num_classes`` or ``in_channels`` that is not a whole number in 1..``MAX_COUNT`` is a
    :class:`ModelArgumentError` (a ``ValueError``, shown by the command line as one line).
    """
    entry = model_entry(name)
    num_classes = entry.info.num_classes if num_classes is None else num_classes
    num_classes = _count_arg(name, "num_classes", num_classes)
    in_channels = _count_arg(name, "in_channels", in_channels)
    spec_changes = overrides.get("spec") if isinstance(overrides.get("spec"), Mapping) else None
    if spec_changes is not None:
        overrides = {**overrides, "spec": changed_spec(name, entry.kwargs.get("spec"), spec_changes)}
    try:
        model = entry.builder(num_classes=num_classes, in_channels=in_channels, **{**entry.kwargs, **overrides})
    except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError) as exc:
        if spec_changes is None:
            raise
        # spec fields of the right kinds can still disagree with each other
        raise ModelArgumentError(f"{name}: spec changes {dict(spec_changes)} do not build: {exc}") from None
    if weights is not None:
        load_weights(model, weights, torchvision_key_map=entry.torchvision_key_map, name=name)
    return model
