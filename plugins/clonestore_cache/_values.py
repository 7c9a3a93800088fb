"""Validation and copying of what the cache stores (the core validates domain
rows; the cache writes its own tables, so it checks its values itself)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Final

from clonestore import ValidationError

__all__ = ["check_json", "check_text", "check_ttl", "check_vector", "copy_value", "hash_text"]

_INT64: Final = 2**63
_JSON_DEPTH: Final = 32


def hash_text(text: str) -> str:
    """The SHA-256 hex digest of ``text``: a convenient query or prompt hash."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def check_text(field: str, value: Any, max_length: int, *, empty: bool = False) -> str:
    if type(value) is not str:
        raise ValidationError(f"expected a string, got {type(value).__name__}", field=field)
    if not value and not empty:
        raise ValidationError("may not be empty", field=field)
    if len(value) > max_length:
        raise ValidationError(f"at most {max_length} characters", field=field)
    if "\x00" in value:
        raise ValidationError("may not contain NUL characters", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("may not contain lone surrogates", field=field) from None
    return value


def check_vector(field: str, value: Any, max_length: int) -> list[float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValidationError(f"expected numbers, got {type(value).__name__}", field=field)
    if not value or len(value) > max_length:
        raise ValidationError(f"must have 1 to {max_length} numbers", field=field)
    out: list[float] = []
    for item in value:
        if type(item) is int:
            item = float(item)
        if type(item) is not float or not math.isfinite(item):
            raise ValidationError("items must be finite numbers", field=field)
        out.append(item)
    return out


def check_json(field: str, value: Any, depth: int = 0) -> Any:
    """A JSON value every backend stores exactly (finite numbers, 64-bit ints, no NUL)."""
    if depth > _JSON_DEPTH:
        raise ValidationError(f"nested deeper than {_JSON_DEPTH} levels", field=field)
    if value is None or type(value) is bool:
        return value
    if type(value) is str:
        return check_text(field, value, 1_000_000, empty=True)
    if type(value) is int:
        if not -_INT64 <= value < _INT64:
            raise ValidationError("integer outside signed 64 bits", field=field)
        return value
    if type(value) is float:
        if not math.isfinite(value):
            raise ValidationError("numbers must be finite", field=field)
        return value
    if isinstance(value, (list, tuple)):
        return [check_json(field, item, depth + 1) for item in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise ValidationError("object keys must be strings", field=field)
            out[check_text(field, key, 1_000_000, empty=True)] = check_json(field, item, depth + 1)
        return out
    raise ValidationError(f"{type(value).__name__} is not a JSON value", field=field)


def check_ttl(value: Any) -> timedelta:
    """A positive time to live, from seconds or a timedelta."""
    if isinstance(value, timedelta):
        ttl = value
    elif type(value) in (int, float) and math.isfinite(value):
        ttl = timedelta(seconds=value)
    else:
        raise ValidationError("must be seconds or a timedelta", field="ttl")
    if ttl <= timedelta(0):
        raise ValidationError("must be positive", field="ttl")
    return ttl


def copy_value(value: Any) -> Any:
    """A deep copy of a JSON-like value (lists and dicts; the rest is immutable)."""
    if type(value) is list:
        return [copy_value(v) for v in value]
    if type(value) is dict:
        return {k: copy_value(v) for k, v in value.items()}
    return value
