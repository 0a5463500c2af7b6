"""Checks of values read at a boundary: capture files, configuration, bitstream headers, run files.

Each check returns the value in its clean form (an int, a float, a float64 array) or raises the caller's error
class with a message that names what was read (`what`: the file and the field) and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import numpy as np

from .errors import GIFStreamError

# The largest image side (pixels) anything allocates for: a camera of a capture, a run, a bitstream's header, a
# `render --pose` or `render-layer --cameras` file, a synthetic capture. Checked in `image_size`, before allocating.
MAX_IMAGE_SIDE = 16384


def image_size(width: Any, height: Any, what: str, error: type[GIFStreamError]) -> tuple[int, int]:
    """(width, height) as integers of at least 1 and at most MAX_IMAGE_SIDE pixels; else `error` naming the limit."""
    w, h = (number(v, f"{what}: {axis}", error, integer=True) for v, axis in ((width, "width"), (height, "height")))
    if w < 1 or h < 1:
        raise error(f"{what}: image size must be positive, got {w}x{h}")
    if max(w, h) > MAX_IMAGE_SIDE:
        raise error(f"{what}: {w}x{h} pixels; image sides must be at most {MAX_IMAGE_SIDE} pixels")
    return w, h


def _bounds_text(minimum, maximum, above) -> str:
    parts = []
    if above is not None:
        parts.append(f"greater than {above:g}")
    if minimum is not None:
        parts.append(f"at least {minimum:g}")
    if maximum is not None:
        parts.append(f"at most {maximum:g}")
    return ", ".join(parts)


def number(value: Any, what: str, error: type[GIFStreamError], *, integer: bool = False, minimum: float | None = None,
           maximum: float | None = None, above: float | None = None) -> int | float:
    """A finite real number (an int when `integer`, a whole float accepted) within the bounds given."""
    kind = "an integer" if integer else "a finite number"
    bounds = _bounds_text(minimum, maximum, above)
    expected = kind + (f", {bounds}" if bounds else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise error(f"{what}: expected {expected}, got {value!r}")
    if not math.isfinite(float(value)):
        raise error(f"{what}: expected {expected}, got {value!r}")
    if integer:
        if isinstance(value, numbers.Integral):
            value = int(value)
        elif float(value).is_integer():
            value = int(float(value))
        else:
            raise error(f"{what}: expected {expected}, got {value!r}")
    else:
        value = float(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum) \
            or (above is not None and value <= above):
        raise error(f"{what}: expected {expected}, got {value!r}")
    return value


def array(value: Any, what: str, error: type[GIFStreamError], shape: tuple[int | None, ...] | None = None,
          finite: bool = True) -> np.ndarray:
    """A float64 array of the given shape (None: any length on that axis), every entry finite."""
    want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")" if shape is not None else None
    try:
        a = np.asarray(value)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"entries of type {a.dtype}")
        a = a.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise error(f"{what}: expected {'an ' + want + ' array of ' if want else ''}numbers, got {_short(value)} ({exc})") from exc
    if shape is not None and (a.ndim != len(shape) or any(s is not None and n != s for n, s in zip(a.shape, shape))):
        raise error(f"{what}: expected an {want} array, got shape {a.shape}")
    if finite and not np.all(np.isfinite(a)):
        raise error(f"{what}: expected finite numbers, found NaN or inf")
    return a


def mapping(value: Any, what: str, error: type[GIFStreamError]) -> dict:
    if not isinstance(value, dict):
        raise error(f"{what}: expected an object (mapping), got {type(value).__name__}")
    return value


def sequence(value: Any, what: str, error: type[GIFStreamError], min_length: int = 0) -> list:
    if not isinstance(value, (list, tuple)):
        raise error(f"{what}: expected a list, got {type(value).__name__} {_short(value)}")
    if len(value) < min_length:
        raise error(f"{what}: expected a list of at least {min_length} entries, got {len(value)}")
    return list(value)


def text(value: Any, what: str, error: type[GIFStreamError]) -> str:
    if not isinstance(value, str) or not value:
        raise error(f"{what}: expected a non-empty string, got {_short(value)}")
    return value


def field(obj: dict, key: str, what: str, error: type[GIFStreamError]) -> Any:
    """obj[key], or an error naming the missing field."""
    if key not in obj:
        raise error(f"{what}: missing field {key!r}")
    return obj[key]


def _short(value: Any, limit: int = 60) -> str:
    s = repr(value)
    return s if len(s) <= limit else s[:limit] + "..."


def fields(obj, origin: str, rules: dict[str, dict], error: type[GIFStreamError]) -> None:
    """Every bool/int/float field of the dataclass `obj` checked: bools are bools, numbers pass `number` with their
    rule from `rules` (`integer` follows the field's default)."""
    for f in dataclasses.fields(obj):
        value, default = getattr(obj, f.name), f.default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise error(f"{origin}.{f.name}: expected true or false, got {value!r}")
        elif isinstance(default, (int, float)):
            number(value, f"{origin}.{f.name}", error, integer=isinstance(default, int), **rules.get(f.name, {}))
