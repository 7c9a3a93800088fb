"""A tagged JSON encoding that gives back exactly the Python values it was given.

JSON itself keeps ``None``, ``bool``, ``str``, ``int`` (any size), ``float``
(Python writes the shortest repr that reads back to the same float, so
``1e16``, ``-0.0`` and ``0.1`` survive) and the order of lists and object
keys. What it lacks is tagged, as a one-key object whose key starts with ``$``:

* ``datetime`` -> ``{"$datetime": "2024-05-01T12:00:00.000001+00:00"}``, read
  back as the same aware datetime;
* ``Decimal`` -> ``{"$decimal": "12.500000"}``, read back as the same Decimal
  (digits and exponent);
* a ``dict`` with a key starting with ``$`` -> ``{"$object": {...}}``;
* a ``tuple`` -> a list (rows hold lists).

A ``dict`` none of whose keys starts with ``$`` is written as a plain object,
and only an object with exactly one ``$`` key is read as a tag, so user JSON
such as ``{"$datetime": "not a date"}`` round-trips as the dict it is (it is
written inside ``$object``). NaN and infinities are refused (the core never
passes them).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

__all__ = ["TAGS", "decode_value", "dumps", "encode_value", "loads"]

#: The tag of each value kind JSON cannot hold by itself.
TAGS: Final = ("$datetime", "$decimal", "$object")


def encode_value(value: Any) -> Any:
    """A JSON-ready form of ``value`` that :func:`decode_value` turns back into it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetimes cannot be encoded; clonestore passes aware ones")
        return {"$datetime": value.isoformat(timespec="microseconds")}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, (list, tuple)):
        return [encode_value(item) for item in value]
    if isinstance(value, dict):
        encoded = {_check_key(key): encode_value(item) for key, item in value.items()}
        if any(key.startswith("$") for key in encoded):
            return {"$object": encoded}
        return encoded
    raise TypeError(f"cannot encode a {type(value).__name__} value")


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"JSON object keys must be strings, got {type(key).__name__}")
    return key


def decode_value(raw: Any) -> Any:
    """The Python value :func:`encode_value` encoded as ``raw``."""
    if type(raw) is list:
        return [decode_value(item) for item in raw]
    if type(raw) is not dict:
        return raw
    if len(raw) == 1:
        ((key, inner),) = raw.items()
        if key == "$datetime":
            return datetime.fromisoformat(inner)
        if key == "$decimal":
            return Decimal(inner)
        if key == "$object":
            return {k: decode_value(v) for k, v in inner.items()}
        if key.startswith("$"):
            raise ValueError(f"unknown tag {key!r} in JSON file")
    return {k: decode_value(v) for k, v in raw.items()}


def dumps(document: Any) -> str:
    """Serialise an already encoded document (strict JSON: no NaN or Infinity)."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str) -> Any:
    """Parse a document written by :func:`dumps` (NaN and Infinity refused)."""
    return json.loads(text, parse_constant=_refuse_constant)
