"""``--model-arg NAME=VALUE``: a family's constructor options from the command line, typed and validated.

The valid names are the keyword options of the model's class (``ResNet(dropout=..., drop_path_rate=...)``), less
what the registry fixes for the name (its spec) and what the trainer sets (classes, channels). A value is converted
to the option's type (from its annotation, else from its default); a wrong name or value is a one-line error naming
the valid options.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import UnknownNameError, UserError
from ..registry import model_entry

_FIXED = ("num_classes", "in_channels", "weights")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def model_options(name: str) -> dict[str, tuple[Any, Any]]:
    """The keyword options ``--model-arg`` accepts for the registered model ``name``: {option: (default, type)}."""
    entry = model_entry(name)
    target: Any = entry.builder
    params = dict(inspect.signature(target).parameters)
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):  # a build function passing options to its class
        cls = _hints(target).get("return")
        if isinstance(cls, type):
            params = {**{k: p for k, p in params.items() if p.kind is not p.VAR_KEYWORD},
                      **inspect.signature(cls).parameters}
            target = cls
    hints = _hints(target.__init__ if isinstance(target, type) else target)
    return {k: (p.default, hints.get(k, p.annotation)) for k, p in params.items()
            if p.kind is p.KEYWORD_ONLY and k not in _FIXED and k not in entry.kwargs
            and p.default is not inspect.Parameter.empty}


def _hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # an annotation that does not resolve: fall back to the defaults' types
        return {}


def parse_model_args(name: str, items: Iterable[str] | Mapping[str, Any]) -> dict[str, Any]:
    """``["dropout=0.3", "drop_path_mode=batch"]`` (strings typed) or a mapping (names checked) -> kwargs."""
    options = model_options(name)
    pairs = list(items.items()) if isinstance(items, Mapping) else [_split(item) for item in items]
    result: dict[str, Any] = {}
    valid = ", ".join(options) or "none"
    for key, value in pairs:
        if key not in options:
            close = difflib.get_close_matches(key, list(options), n=2, cutoff=0.5)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise UnknownNameError(f"--model-arg {key}: {name} has no such option; {hint}options: {valid}")
        result[key] = _typed(name, key, value, options[key]) if isinstance(value, str) else value
    return result


def _split(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--model-arg expects name=value, got {item!r}")
    return key.strip(), value.strip()


def _typed(model: str, key: str, text: str, option: tuple[Any, Any]) -> Any:
    default, hint = option
    args = typing.get_args(hint)
    hint_name = (getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
                 if hint is not inspect.Parameter.empty else type(default).__name__)
    kinds = set(args) | {typing.get_origin(hint) or hint}
    try:
        if typing.get_origin(hint) is typing.Literal:
            if text not in map(str, args):
                raise ValueError(f"expected one of {', '.join(map(str, args))}")
            return text
        if text.lower() in ("none", "null") and (type(None) in kinds or default is None):
            return None
        if bool in kinds or isinstance(default, bool):
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise ValueError("expected true or false")
        if "," in text and any(typing.get_origin(k) is tuple or k is tuple for k in kinds):
            return tuple(float(v) for v in text.split(","))
        if int in kinds or (isinstance(default, int) and float not in kinds):
            number = float(text)
            if not number.is_integer():
                raise ValueError("expected an integer")
            return int(number)
        if float in kinds or isinstance(default, float):
            return float(text)
        return text
    except ValueError as exc:
        raise UserError(f"--model-arg {key}={text}: bad value for {model}'s option {key} ({hint_name}): "
                        f"{exc}") from None


__all__ = ["model_options", "parse_model_args"]
