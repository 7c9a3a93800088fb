"""Lookups into JSON columns (``metadata__kind="a"``), as Django's JSONField has them.

A lookup on a ``json`` column names a path of object keys after the column and
ends with an optional lookup name: ``metadata__kind="a"``,
``metadata__score__gte=3``, ``metadata__a__b__in=[1, 2]``,
``metadata__has_key="kind"``. :func:`parse_json_lookup` checks one into
:class:`JsonCond` nodes of the filter tree; :func:`json_holds` is their meaning,
the reference every backend matches.

The meaning (one on every backend):

* **Keys.** The parts between ``__`` are object keys, outermost first; each is a
  non-empty string. A key that contains ``__`` cannot be written in a lookup
  name (``has_key="a__b"`` tests one). A part is always an object key, never an
  array index (``metadata__tags__0`` looks up the key ``"0"``). A key named like a
  lookup is reached by naming the lookup after it (``metadata__in__eq=1``).
* **Equality is JSON's.** Two values are equal when they have the same JSON type
  and the same value: ``1`` is not ``"1"``, ``true`` is not ``1``, ``null``
  equals only ``null``. Numbers compare by value, so ``1`` equals ``1.0``
  (both JSON numbers; which of the two was stored still round-trips).
* **A missing key satisfies no comparison**: not ``eq``, not ``ne``, not
  ``not_in``, as a NULL column does not. A key is missing when the column is
  NULL, when a part of the path is not an object, or when the object lacks the
  key. ``metadata__kind__isnull=True`` selects exactly the rows whose key is
  missing (as in Django), ``isnull=False`` the rows that have it, whatever its
  value. ``metadata__kind=None`` selects a present JSON ``null``.
* **Ordering** (``lt``, ``lte``, ``gt``, ``gte``) holds only between two numbers
  or two strings; strings compare by code point. Other pairs never satisfy it.
* **Values.** ``eq``, ``ne``, ``in`` and ``not_in`` take JSON scalars (``str``,
  ``int``, ``float``, ``bool``, ``None``); ordering takes a number or a string;
  objects and arrays are refused (test their keys instead).
* **Numbers** are exact on every backend for integers within the signed 64-bit
  range compared with integers, and for floats; an integer beyond ±2**53
  compared with a float may compare differently by engine (JSON's interoperable
  range, RFC 7493, is ±2**53).

Lookups: ``eq`` (the default), ``ne``, ``lt``, ``lte``, ``gt``, ``gte``, ``in``,
``not_in``, ``isnull``, ``has_key`` (the key named by the value exists),
``has_keys`` (all of a list), ``has_any_keys`` (any of a list).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from clonestore.errors import ValidationError
from clonestore.schema import JSON_MAX_DEPTH, Column, check

__all__ = [
    "JSON_LOOKUPS",
    "JSON_OPS",
    "ORDERING",
    "JsonCond",
    "json_holds",
    "json_type",
    "parse_json_lookup",
]

#: Lookup names a JSON key lookup may end with.
JSON_LOOKUPS: Final = frozenset(
    {
        "eq",
        "ne",
        "lt",
        "lte",
        "gt",
        "gte",
        "in",
        "not_in",
        "isnull",
        "has_key",
        "has_keys",
        "has_any_keys",
    }
)
#: Operators of :class:`JsonCond` nodes.
JSON_OPS: Final = frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "has_key"})
#: The ordering operators and their Python meaning (shared with the column lookups').
ORDERING: Final[Mapping[str, Callable[[Any, Any], Any]]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}
#: Column lookups JSON keys do not have (refused rather than read as key names).
_NOT_FOR_KEYS: Final = frozenset({"contains", "overlap", "startswith", "endswith"})


@attrs.frozen
class JsonCond:
    """``column``'s JSON value at ``path`` (object keys, outermost first) ``op`` ``value``.

    ``op`` is one of :data:`JSON_OPS`. ``has_key`` with ``True``: the path exists
    (whatever its value, ``null`` included); with ``False``: it does not. The
    others hold only where the path exists; ``value`` is a JSON scalar (``None`` is
    JSON ``null``), for ``in``/``not_in`` a non-empty tuple of them, for ordering a
    number or a string. :func:`json_holds` is the meaning.
    """

    column: str
    path: tuple[str, ...]
    op: str
    value: Any


_MISSING: Final = object()


def _at(document: Any, path: tuple[str, ...]) -> Any:
    value = document
    for key in path:
        if type(value) is not dict:
            return _MISSING
        value = value.get(key, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def json_type(value: Any) -> str:
    """The JSON type of a JSON value: ``null``, ``boolean``, ``number``, ``string``,
    ``array`` or ``object``."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is bool:
        return "boolean"
    if kind is int or kind is float:
        return "number"
    if kind is str:
        return "string"
    return "array" if kind is list else "object"


def _equal(a: Any, b: Any) -> bool:
    return json_type(a) == json_type(b) and bool(a == b)


def json_holds(cond: JsonCond, document: Any) -> bool:
    """Whether a row whose column holds ``document`` satisfies ``cond``."""
    found = _at(document, cond.path)
    op = cond.op
    if op == "has_key":
        return (found is not _MISSING) is cond.value
    if found is _MISSING:
        return False
    value = cond.value
    if op == "eq":
        return _equal(found, value)
    if op == "ne":
        return not _equal(found, value)
    if op == "in":
        return any(_equal(found, v) for v in value)
    if op == "not_in":
        return not any(_equal(found, v) for v in value)
    kind = json_type(found)
    if kind != json_type(value) or kind not in ("number", "string"):
        return False
    return bool(ORDERING[op](found, value))


# --------------------------------------------------------------------------- parsing


@functools.cache
def _scalar_column(col: Column) -> Column:
    """The rules a compared value obeys: a JSON value of ``col`` (no validator)."""
    return attrs.evolve(col, nullable=True, validator=None)


@functools.cache
def _key_column(col: Column) -> Column:
    """The rules a key obeys: non-empty text without NUL or lone surrogates."""
    return attrs.evolve(
        col,
        kind="text",
        nullable=False,
        min_length=1,
        max_length=None,
        choices=None,
        email=False,
        casefold=False,
        validator=None,
    )


def _scalar(col: Column, field: str, value: Any) -> Any:
    if isinstance(value, (Mapping, list, tuple)):
        raise ValidationError(
            "JSON key lookups compare scalars (str, int, float, bool, None); test the keys "
            "of an object or array instead",
            field=field,
        )
    try:
        return check(_scalar_column(col), value)
    except ValidationError as exc:
        raise ValidationError(exc.message, field=field) from None


def _key(col: Column, field: str, key: Any) -> str:
    if type(key) is not str or not key:
        raise ValidationError(f"JSON keys are non-empty strings, got {key!r}", field=field)
    try:
        return str(check(_key_column(col), key))
    except ValidationError as exc:
        raise ValidationError(f"JSON key: {exc.message}", field=field) from None


def parse_json_lookup(
    col: Column, field: str, parts: list[str], value: Any
) -> tuple[tuple[JsonCond, ...], bool]:
    """The nodes of the lookup ``field=value`` on the JSON column ``col``, whose name
    after the column splits at ``__`` into ``parts``; and whether any one of them
    (True) or all of them (False) must hold.

    :raises ValidationError: a bad key, lookup or value, naming ``field``.
    """
    op = parts[-1] if parts[-1] in JSON_LOOKUPS else "eq"
    keys = parts[:-1] if parts[-1] in JSON_LOOKUPS else parts
    if op == "eq" and parts[-1] in _NOT_FOR_KEYS:
        raise ValidationError(
            f"lookup {parts[-1]!r} does not apply to a JSON key; JSON keys take "
            f"{', '.join(sorted(JSON_LOOKUPS))} (a key named {parts[-1]!r}: "
            f"{col.name}__...__{parts[-1]}__eq)",
            field=field,
        )
    path = tuple(_key(col, field, k) for k in keys)
    if len(path) + (op in ("has_key", "has_keys", "has_any_keys")) > JSON_MAX_DEPTH:
        raise ValidationError(f"JSON paths are at most {JSON_MAX_DEPTH} keys long", field=field)
    if op in ("has_key", "has_keys", "has_any_keys"):
        if op == "has_key":
            names: Iterable[Any] = (value,)
        elif isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise ValidationError(f"{op} takes a list of key names", field=field)
        else:
            names = value
        conds = tuple(
            JsonCond(col.name, (*path, _key(col, field, name)), "has_key", True) for name in names
        )
        return conds, op == "has_any_keys"
    if not path:
        raise ValidationError(
            f"{op} on a JSON field needs a key: {col.name}__<key>__{op}", field=field
        )
    if op == "isnull":
        if type(value) is not bool:
            raise ValidationError("isnull takes True or False", field=field)
        return (JsonCond(col.name, path, "has_key", not value),), False
    if op in ("in", "not_in"):
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise ValidationError(f"{op} takes a list of values", field=field)
        values = tuple(_scalar(col, field, v) for v in value)
        if not values:  # in nothing: no row; not in nothing: every row with the key
            return (
                ((), True) if op == "in" else ((JsonCond(col.name, path, "has_key", True),), False)
            )
        return (JsonCond(col.name, path, op, values),), False
    checked = _scalar(col, field, value)
    if op in ORDERING and json_type(checked) not in ("number", "string"):
        raise ValidationError(
            f"{op} on a JSON key compares with a number or a string, got {value!r}", field=field
        )
    return (JsonCond(col.name, path, op, checked),), False
