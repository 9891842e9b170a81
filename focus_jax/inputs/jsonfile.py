"""Bounded JSON files and typed fields of their objects.

``read_json_object`` refuses what ``json.loads`` would turn into a traceback or a silent
surprise: a missing file, a directory, a file above ``limit("JSON_BYTES")``, bytes that are
not UTF-8, invalid JSON, ``NaN``/``Infinity``, and a top level that is not an object.
``field`` reads one entry with its type and range checked, naming ``what.key``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from focus_jax.errors import InputError
from focus_jax.inputs.limits import limit

__all__ = ["MISSING", "field", "read_json_object"]

MISSING = object()


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def read_json_object(path: str | Path, what: str | None = None) -> dict:
    """The JSON object in ``path``.

    Args:
        path: the file.
        what: how to name the file in messages (default: its path).

    Raises:
        InputError: missing, not a regular file, too large, not UTF-8, invalid JSON, a
            non-finite number, or not a JSON object.
    """
    path = Path(path)
    name = what or str(path)
    if not path.exists():
        raise InputError(f"{name} not found")
    if not path.is_file():
        raise InputError(f"{name} is not a regular file")
    size = path.stat().st_size
    if size > limit("JSON_BYTES"):
        raise InputError(
            f"{name} is {size:,} bytes, above the limit of {limit('JSON_BYTES'):,} (FOCUS_JAX_MAX_JSON_BYTES)"
        )
    try:
        value = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise InputError(f"{name} is not UTF-8 text (a binary file?)") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(f"{name} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InputError(f"{name} must hold a JSON object, got a {type(value).__name__}")
    return value


def field(d: dict, key: str, default, what: str, kind: str, lo=None, hi: int | None = None, hi_name: str | None = None):
    """``d[key]`` (``default`` when absent or null) checked to be of ``kind``.

    Args:
        kind: ``int`` (bools refused), ``float`` (finite; ints accepted), ``bool``, ``str``,
            ``dict`` or ``list``.
        lo: smallest allowed number; hi: largest; hi_name: a ``LIMITS`` name giving the
            largest (the message names its variable).

    Raises:
        InputError: wrong type or out of range, naming ``what.key``.
    """
    value = d.get(key)
    if value is None:
        value = default
    if value is MISSING:
        raise InputError(f"{what}.{key} is missing")
    name = f"{what}: {key}" if what.endswith(".json") else f"{what}.{key}"
    if not isinstance(value, _TYPES[kind]) or (kind in ("int", "float") and isinstance(value, bool)):
        raise InputError(f"{name} must be {_KIND_NAMES[kind]}, got {_json_type(value)} {_short(value)}")
    if kind == "float":
        value = float(value)
        if not math.isfinite(value):
            raise InputError(f"{name} must be finite, got {value}")
    if kind in ("int", "float"):
        if lo is not None and value < lo:
            raise InputError(f"{name} must be >= {lo}, got {value}")
        if hi_name is not None:
            hi = limit(hi_name)
        if hi is not None and value > hi:
            extra = f" (raise it with FOCUS_JAX_MAX_{hi_name})" if hi_name else ""
            raise InputError(f"{name} is {value:,}, above the limit of {hi:,}{extra}")
    return value


_TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str, "dict": dict, "list": list}
_KIND_NAMES = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "dict": "a JSON object",
    "list": "a list",
}


def _json_type(value) -> str:
    names = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        dict: "object",
        list: "list",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
