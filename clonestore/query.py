"""Backend-neutral filters, orderings, keyset cursors and their one meaning.

Callers write keyword lookups (``status="completed"``, ``created_at__gte=t``,
``tags__contains=["a"]``); :func:`parse_where` checks them against a table spec
and turns them into a small expression tree of :class:`Cond`, :class:`And` and
:class:`Or` nodes, with every value already validated. Backends translate the
tree; :func:`matches` and :func:`sort_rows` define what it means, and the
memory backend uses them directly.

Operators (``field__op=value``; a bare ``field=value`` is ``eq``):

==============  ===========================================================
eq, ne          equal / not equal (``field=None`` means ``isnull=True``)
lt, lte, gt,    ordered comparison: text by code point, numbers, datetimes,
gte             decimals
in, not_in      membership in a list of values
isnull          ``True``: the value is NULL; ``False``: it is not
contains        list field: has every given item; text field: has the
                substring (``%``, ``_`` and ``\\`` are literal)
overlap         list field: has at least one of the given items
startswith,     text prefix / suffix, literal, case-sensitive
endswith
==============  ===========================================================

NULL never satisfies a comparison (``ne``, ``not_in`` included), as in SQL.
On a ``casefold`` column (emails) ``eq``, ``ne``, ``in`` and ``not_in``
compare ``str.casefold()`` forms.

On a ``json`` column, lookups reach into the JSON object by key, as Django's
JSONField has them (``metadata__kind="a"``, ``metadata__score__gte=3``,
``metadata__a__b__in=[1, 2]``, ``metadata__has_key="kind"``): they become
:class:`JsonCond` nodes; see :mod:`clonestore._json_lookups` for their meaning.
``metadata__isnull`` is still the column's own NULL test.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any, Final, TypeAlias

import attrs

from clonestore._json_lookups import (
    JSON_OPS,
    ORDERING,
    JsonCond,
    json_holds,
    json_type,
    parse_json_lookup,
)
from clonestore.errors import ValidationError
from clonestore.schema import ORDERABLE, Column, TableSpec, check, checker

__all__ = [
    "FALSE",
    "JSON_OPS",
    "OPERATORS",
    "TRUE",
    "And",
    "Cond",
    "Expr",
    "JsonCond",
    "Lookup",
    "Or",
    "OrderBy",
    "decode_cursor",
    "encode_cursor",
    "json_holds",
    "json_type",
    "keyset_after",
    "matches",
    "parse_order",
    "parse_where",
    "sort_rows",
]

Row: TypeAlias = dict[str, Any]

COMPARISONS: Final = frozenset({"eq", "ne", "lt", "lte", "gt", "gte"})
OPERATORS: Final = COMPARISONS | {
    "in",
    "not_in",
    "isnull",
    "contains",
    "overlap",
    "startswith",
    "endswith",
}


@attrs.frozen
class Cond:
    """``column <op> value``; ``value`` is validated for the column's kind."""

    column: str
    op: str
    value: Any


@attrs.frozen
class And:
    """All of ``items`` hold (an empty ``And`` is true)."""

    items: tuple[Expr, ...]


@attrs.frozen
class Or:
    """At least one of ``items`` holds (an empty ``Or`` is false)."""

    items: tuple[Expr, ...]


Expr: TypeAlias = Cond | JsonCond | And | Or
TRUE: Final = And(())
FALSE: Final = Or(())


@attrs.frozen
class OrderBy:
    """Order by ``column``: ascending with NULLs last, or descending with NULLs first."""

    column: str
    desc: bool = False


# --------------------------------------------------------------------------- parsing


def _value_column(col: Column) -> Column:
    """The rules a filter value obeys: the column's type and enum, not its range
    (``size_bytes__gt=-1`` is a fine question) nor its minimum length."""
    return _derived(col, "value", nullable=False, minimum=None, maximum=None, min_length=0)


#: Columns derived from a spec's columns for checking filter values, built once per
#: column: ``attrs.evolve`` costs microseconds, and a frozen Column hashes all its fields,
#: so the cache is keyed by identity (and holds the column, so the identity stays its).
_DERIVED: dict[tuple[int, str], tuple[Column, Column]] = {}


def _derived(col: Column, purpose: str, **changes: Any) -> Column:
    entry = _DERIVED.get((id(col), purpose))
    if entry is not None and entry[0] is col:
        return entry[1]
    derived = attrs.evolve(col, **changes)
    if len(_DERIVED) > 10_000:  # columns made on the fly (tests): start again
        _DERIVED.clear()
    _DERIVED[id(col), purpose] = (col, derived)
    return derived


def _parse_one(spec: TableSpec, key: str, value: Any) -> Expr:
    name, _, op = key.partition("__")
    if op and op != "isnull":
        json_col = spec.by_name.get(name)
        if json_col is not None and json_col.kind == "json":
            conds, any_of = parse_json_lookup(json_col, key, op.split("__"), value)
            if len(conds) == 1:
                return conds[0]
            return Or(conds) if any_of else And(conds)
    op = op or "eq"
    if op not in OPERATORS:
        raise ValidationError(
            f"unknown lookup {op!r}; use one of {', '.join(sorted(OPERATORS))}", field=key
        )
    col = spec.column(name)
    if op == "isnull":
        if type(value) is not bool:
            raise ValidationError("isnull takes True or False", field=key)
        return Cond(name, "isnull", value)
    if value is None:
        if op == "eq":
            return Cond(name, "isnull", True)
        if op == "ne":
            return Cond(name, "isnull", False)
        raise ValidationError("None is only allowed with eq, ne or isnull", field=key)
    kind = col.kind
    if op in ("contains", "overlap") and kind == "list":
        items = check(_derived(_value_column(col), "items", max_length=None, min_length=0), value)
        return Cond(name, op, tuple(items))
    if op in ("contains", "startswith", "endswith") and kind in ("text", "key"):
        probe = _derived(_value_column(col), "probe", choices=None, email=False, min_length=0)
        return Cond(name, op, check(probe, value))
    if op in ("contains", "overlap", "startswith", "endswith"):
        raise ValidationError(f"lookup {op!r} does not apply to a {kind} field", field=key)
    if kind not in ORDERABLE:
        raise ValidationError(f"a {kind} field cannot be filtered with {op!r}", field=key)
    vcol = _value_column(col)
    if op in ("in", "not_in"):
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ValidationError(f"{op} takes a list of values", field=key)
        values = tuple(check(vcol, v) for v in value)
        if col.casefold:
            return _parse_casefold(col, op, values)
        if not values:
            return FALSE if op == "in" else Cond(name, "isnull", False)
        return Cond(name, op, values)
    if op in ("lt", "lte", "gt", "gte") and kind == "bool":
        raise ValidationError("booleans support eq, ne, in, not_in and isnull only", field=key)
    checked = check(vcol, value)
    if col.casefold and op in ("eq", "ne"):
        return _parse_casefold(col, op, checked)
    return Cond(name, op, checked)


def _parse_casefold(col: Column, op: str, value: Any) -> Expr:
    if op in ("in", "not_in"):
        folded = tuple(dict.fromkeys(v.casefold() for v in value))
        if not folded:
            return FALSE if op == "in" else Cond(col.key_name, "isnull", False)
        return Cond(col.key_name, op, folded)
    return Cond(col.key_name, op, value.casefold())


def parse_where(spec: TableSpec, where: Mapping[str, Any] | None) -> Expr:
    """Turn keyword lookups into a validated expression (all must hold)."""
    if where is not None and not isinstance(where, Mapping):
        raise ValidationError(f"where must be a mapping, got {type(where).__name__}")
    if not where:
        return TRUE
    for key in where:
        if not isinstance(key, str):
            raise ValidationError(f"lookups are field names (strings), got {key!r}")
    items = tuple(_parse_one(spec, key, value) for key, value in where.items())
    return items[0] if len(items) == 1 else And(items)


class Lookup:
    """The where-clause of ``name=value`` lookups on fixed fields, built once per table.

    ``Lookup(spec, ("email",))(("Ann@Example.com",))`` is what
    ``parse_where(spec, {"email": "Ann@Example.com"})`` gives, conjoined after
    ``prefix`` (the repository's live-rows and owner terms), without parsing
    keys or finding columns on every call: a repository's own fixed-shape
    queries (``find_by_email``, ``active_for``...) build theirs once. Values
    are checked as :func:`parse_where` checks them (``None`` is ``isnull``;
    a ``casefold`` column compares ``casefold()`` forms).
    """

    __slots__ = ("_checks", "_prefix")

    def __init__(self, spec: TableSpec, names: Sequence[str], prefix: Sequence[Expr] = ()) -> None:
        checks: list[tuple[str, Callable[[Any], Any], bool]] = []
        for name in names:
            col = spec.column(name)
            if col.kind not in ORDERABLE:
                raise TypeError(f"{spec.name}.{name}: a {col.kind} field has no equality lookup")
            target = col.key_name if col.casefold else name
            checks.append((target, checker(_value_column(col)), col.casefold))
        self._checks = tuple(checks)
        self._prefix = tuple(e for e in prefix if not _is_true(e))

    def __call__(self, values: Sequence[Any]) -> Expr:
        items = list(self._prefix)
        for (name, check_value, fold), value in zip(self._checks, values, strict=True):
            if value is None:
                items.append(Cond(name, "isnull", True))
            elif fold:
                items.append(Cond(name, "eq", check_value(value).casefold()))
            else:
                items.append(Cond(name, "eq", check_value(value)))
        return items[0] if len(items) == 1 else And(tuple(items))


def _is_true(expr: Expr) -> bool:
    # Cheaper than ``expr == TRUE``, which compares whole trees field by field.
    return type(expr) is And and not expr.items


def conjoin(*exprs: Expr) -> Expr:
    """``And`` of the given expressions, dropping trivially true ones."""
    items = tuple(e for e in exprs if not _is_true(e))
    if not items:
        return TRUE
    return items[0] if len(items) == 1 else And(items)


def parse_order(spec: TableSpec, order_by: str | Sequence[str] | None) -> tuple[OrderBy, ...]:
    """``"-created_at"`` or ``["name", "-created_at"]`` -> orderings, ``id`` last as tie-break.

    Without ``order_by`` rows come in creation order (``created_at``, then ``id``).
    """
    if order_by is None:
        keys: Sequence[str] = ("created_at",) if "created_at" in spec.by_name else ()
    elif isinstance(order_by, str):
        keys = (order_by,)
    elif isinstance(order_by, (list, tuple)):
        keys = order_by
    else:
        raise ValidationError(f"order_by takes a field name or a list of them, got {order_by!r}")
    out: list[OrderBy] = []
    for key in keys:
        if type(key) is not str or not key.lstrip("-"):
            raise ValidationError(f"order_by takes field names, got {key!r}")
        desc = key.startswith("-")
        name = key.lstrip("-")
        col = spec.column(name)
        if col.kind not in ORDERABLE:
            raise ValidationError(f"a {col.kind} field cannot be ordered", field=name)
        if name == "id":
            out.append(OrderBy("id", desc))
            return tuple(out)
        out.append(OrderBy(name, desc))
    out.append(OrderBy("id"))
    return tuple(out)


# --------------------------------------------------------------------------- keyset pages


def keyset_after(
    order: Sequence[OrderBy], values: Sequence[Any], spec: TableSpec | None = None
) -> Expr:
    """Rows strictly after the row whose ordered values are ``values``.

    ``order`` must end with a non-null unique column (``id``); NULLs sort last
    ascending and first descending, matching :func:`sort_rows`.

    With ``spec``, columns that cannot be NULL get no ``IS NULL`` branches, and
    when the first ordered column cannot be NULL the expression also carries its
    range bound (``created_at >= v`` ascending, ``<= v``
    descending). The bound changes nothing about which rows match (every row
    after ``values`` satisfies it) but gives an index on the ordered columns a
    range to start from, so a deep page costs what the first page costs; the
    nested ``OR`` alone makes SQL planners scan from the start.
    """
    expr: Expr = FALSE
    for key, value in reversed(list(zip(order, values, strict=True))):
        nullable = spec is None or spec.column(key.column).nullable
        expr = Or((_strictly_after(key, value, nullable), And((_same(key, value), expr))))
    expr = _simplify(expr)
    if spec is not None and order and values[0] is not None and expr not in (TRUE, FALSE):
        first = order[0]
        if not spec.column(first.column).nullable:
            bound = Cond(first.column, "lte" if first.desc else "gte", values[0])
            expr = And((bound, expr))
    return expr


def _strictly_after(key: OrderBy, value: Any, nullable: bool = True) -> Expr:
    if key.desc:
        if value is None:
            return Cond(key.column, "isnull", False)
        return Cond(key.column, "lt", value)
    if value is None:
        return FALSE
    if not nullable:  # no NULLs to come after the values
        return Cond(key.column, "gt", value)
    return Or((Cond(key.column, "gt", value), Cond(key.column, "isnull", True)))


def _same(key: OrderBy, value: Any) -> Expr:
    if value is None:
        return Cond(key.column, "isnull", True)
    return Cond(key.column, "eq", value)


def _simplify(expr: Expr) -> Expr:
    if not isinstance(expr, (And, Or)):
        return expr
    items: list[Expr] = []
    for item in (_simplify(i) for i in expr.items):
        if isinstance(expr, And):
            if item == FALSE:
                return FALSE
            if item != TRUE:
                items.append(item)
        else:
            if item == TRUE:
                return TRUE
            if item != FALSE:
                items.append(item)
    if len(items) == 1:
        return items[0]
    return And(tuple(items)) if isinstance(expr, And) else Or(tuple(items))


def _signature(order: Sequence[OrderBy]) -> str:
    return ",".join(("-" if o.desc else "") + o.column for o in order)


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, Decimal):
        return {"d": str(value)}
    return value


def _decode_value(col: Column, raw: Any) -> Any:
    if raw is None:
        return None
    if col.kind == "datetime":
        return check(col, datetime.fromisoformat(raw["t"]))
    if col.kind == "decimal":
        return check(col, Decimal(raw["d"]))
    return check(_value_column(col), raw)


#: The cursor's JSON encoder, made once (``json.dumps`` with these options makes one a call).
_CURSOR_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _no_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder behind _CURSOR_JSON, made once: JSONEncoder.encode makes one a call
# (half of a cursor's cost). The same options, so the same text.
_cursor_c_encoder: Any = c_make_encoder and c_make_encoder(
    None, _no_json, encode_basestring, None, ":", ",", False, False, True
)


def encode_cursor(order: Sequence[OrderBy], row: Mapping[str, Any]) -> str:
    """An opaque cursor that continues after ``row`` in ``order``."""
    payload = [_signature(order), [_encode_value(row[o.column]) for o in order]]
    if _cursor_c_encoder is None:  # pragma: no cover - Pythons without the C accelerator
        text = _CURSOR_JSON.encode(payload)
    else:
        text = "".join(_cursor_c_encoder(payload, 0))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(spec: TableSpec, order: Sequence[OrderBy], cursor: str) -> tuple[Any, ...]:
    """The ordered values a cursor continues after; ``ValidationError`` if it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        signature, values = json.loads(raw)
        if signature != _signature(order) or len(values) != len(order):
            raise ValueError("cursor was made for another ordering")
        return tuple(
            _decode_value(spec.column(o.column), v) for o, v in zip(order, values, strict=True)
        )
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError) as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError(f"invalid page cursor ({exc})", field="cursor") from None


# --------------------------------------------------------------------------- meaning


def _cond_holds(cond: Cond, actual: Any) -> bool:
    op = cond.op
    if op == "isnull":
        return (actual is None) is cond.value
    if actual is None:
        return False
    value = cond.value
    if op == "eq":
        return bool(actual == value)
    if op == "ne":
        return bool(actual != value)
    if op in ORDERING:
        return bool(ORDERING[op](actual, value))
    if op == "in":
        return actual in value
    if op == "not_in":
        return actual not in value
    if op == "contains":
        if isinstance(actual, str):
            return value in actual
        return all(item in actual for item in value)
    if op == "overlap":
        return any(item in actual for item in value)
    if op == "startswith":
        return bool(actual.startswith(value))
    if op == "endswith":
        return bool(actual.endswith(value))
    raise AssertionError(op)  # pragma: no cover - parse_where admits only OPERATORS


def matches(expr: Expr, row: Mapping[str, Any]) -> bool:
    """Whether ``row`` satisfies ``expr``: the reference meaning of every filter."""
    if isinstance(expr, Cond):
        return _cond_holds(expr, row[expr.column])
    if isinstance(expr, JsonCond):
        return json_holds(expr, row[expr.column])
    if isinstance(expr, And):
        return all(matches(item, row) for item in expr.items)
    return any(matches(item, row) for item in expr.items)


def sort_rows(rows: list[Row], order: Sequence[OrderBy]) -> list[Row]:
    """Sort ``rows`` in place by ``order``: NULLs last ascending, first descending."""
    for key in reversed(order):
        name = key.column
        rows.sort(
            key=lambda r: (r[name] is None, r[name]) if r[name] is not None else (True,),
            reverse=key.desc,
        )
    return rows
