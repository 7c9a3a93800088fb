"""Validation and copying of what the cache stores (the core validates domain
rows; the cache writes its own tables, so it checks its values itself)."""

from __future__ import annotations

import functools
import hashlib
import math
from datetime import timedelta
from typing import Any, Final

from clonestore import ValidationError
from clonestore.schema import check
from clonestore.spi import Column

__all__ = ["check_json", "check_text", "check_ttl", "check_vector", "hash_text"]

_INT64: Final = 2**63
_JSON_DEPTH: Final = 32


def hash_text(text: str) -> str:
    """The SHA-256 hex digest of ``text``: a convenient query or prompt hash."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# The cache writes its own tables, so it validates its values itself, with the
# core's rules (clonestore.schema.check): every backend then stores them exactly.


@functools.cache
def _column(field: str, kind: str, max_length: int | None, min_length: int) -> Column:
    return Column(name=field, kind=kind, max_length=max_length, min_length=min_length)


def check_text(field: str, value: Any, max_length: int, *, empty: bool = False) -> str:
    """Text without NUL or lone surrogates, non-empty unless ``empty``."""
    text: str = check(_column(field, "text", max_length, 0 if empty else 1), value)
    return text


def check_vector(field: str, value: Any, max_length: int) -> list[float]:
    """1 to ``max_length`` finite numbers."""
    vector: list[float] = check(_column(field, "vector", max_length, 1), value)
    return vector


def check_json(field: str, value: Any) -> Any:
    """A JSON value every backend stores exactly (finite numbers, 64-bit ints, no NUL)."""
    return check(_column(field, "json", None, 0), value)


#: The longest time to live: 100 years (an entry's expiry stays a datetime).
MAX_TTL: Final = timedelta(days=100 * 366)


def check_ttl(value: Any) -> timedelta:
    """A positive time to live of at most :data:`MAX_TTL`, from seconds or a timedelta."""
    if isinstance(value, timedelta):
        ttl = value
    elif type(value) in (int, float) and math.isfinite(value):
        if abs(value) > MAX_TTL.total_seconds():
            raise ValidationError(f"must be at most {MAX_TTL.days} days", field="ttl")
        ttl = timedelta(seconds=value)
    else:
        raise ValidationError("must be seconds or a timedelta", field="ttl")
    if ttl <= timedelta(0):
        raise ValidationError("must be positive", field="ttl")
    if ttl > MAX_TTL:
        raise ValidationError(f"must be at most {MAX_TTL.days} days", field="ttl")
    return ttl

