"""JSON key lookups (:class:`clonestore.query.JsonCond`) in SQL, one spelling per engine.

The meaning is :func:`clonestore.spi_reference.json_holds`: values compare as JSON (same JSON
type, numbers by value), a missing key satisfies no comparison, ordering holds
between two numbers or two strings (strings by code point). Each engine keeps the
JSON types apart with its own type test, and every key is a bound parameter,
never SQL text:

* SQLite: ``json_each`` over the object, one level per key, matching ``key = ?``
  (the unescaped key, so any character is data), then the item's ``type`` and
  ``atom`` (``integer``/``real`` are numbers, ``true``/``false``/``null``
  their own types, text compared BINARY: code points).
* PostgreSQL: the column cast to ``jsonb``, then ``-> ?::text`` per key (a text
  key never indexes an array); equality as containment ``@> ?::jsonb`` (the
  expression the GIN index on ``(column::jsonb)`` serves), ``jsonb`` comparison
  for numbers (exact) and ``COLLATE "C"`` text for strings.
* MariaDB: ``JSON_EXTRACT(column, ?)`` with the path ``$."key"...`` bound as a
  parameter (keys written as the stored JSON text writes them, which is what
  MariaDB matches), ``JSON_TYPE`` to keep types apart, integers compared as
  ``SIGNED`` and floats as ``DOUBLE`` (each only for its own type, so no
  conversion warnings), strings in ``utf8mb4_nopad_bin``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import peewee
from peewee import SQL, NodeList

from clonestore.query import JsonCond
from clonestore.spi_reference import json_type

from ._codecs import dump_json

__all__ = ["JsonLookup", "json_shape", "mariadb_json", "postgres_json", "sqlite_json"]

_NUMBER: Final = "number"
_STRING: Final = "string"


def json_shape(cond: JsonCond) -> tuple[Any, ...]:
    """What the SQL of ``cond`` depends on: column, operator, path length and the JSON
    types of its values (``has_key``: whether the key must exist)."""
    if cond.op == "has_key":
        return ("json", cond.column, "has_key", len(cond.path), cond.value)
    if cond.op in ("in", "not_in"):
        kinds = tuple(json_type(v) for v in cond.value)
    else:
        kinds = (json_type(cond.value),)
    return ("json", cond.column, cond.op, len(cond.path), kinds)


class JsonLookup:
    """One JSON key lookup as a dialect compiles it: its shape, and parameter nodes
    that take their values from the call's :class:`JsonCond` (so the SQL depends on
    the shape only)."""

    __slots__ = ("_param", "depth", "exists", "kinds", "op")

    def __init__(self, cond: JsonCond, param: Callable[[Callable[[JsonCond], Any]], Any]) -> None:
        shape = json_shape(cond)
        #: The operator (:data:`clonestore.query.JSON_OPS`).
        self.op: str = cond.op
        #: How many keys the path has.
        self.depth: int = len(cond.path)
        #: ``has_key``: whether the key must exist.
        self.exists: bool = cond.value is True and cond.op == "has_key"
        #: The JSON types of the value (one) or of the ``in`` list's items.
        self.kinds: tuple[str, ...] = () if cond.op == "has_key" else shape[4]
        self._param = param

    def key(self, i: int) -> Any:
        """Parameter: the path's key number ``i`` (text)."""
        return self._param(lambda c: c.path[i])

    def json_path(self) -> Any:
        """Parameter: the path as a JSON path, ``$."a"."b"``, each key as the stored
        JSON text writes it."""
        return self._param(lambda c: "$" + "".join("." + dump_json(k) for k in c.path))

    def value(self, convert: Callable[[Any], Any] = lambda v: v) -> Any:
        """Parameter: the compared value, converted."""
        return self._param(lambda c: convert(c.value))

    def item(self, i: int, convert: Callable[[Any], Any] = lambda v: v) -> Any:
        """Parameter: item ``i`` of the ``in`` list, converted."""
        return self._param(lambda c: convert(c.value[i]))

    def items(self, convert: Callable[[Sequence[Any]], Any]) -> Any:
        """Parameter: the whole ``in`` list, converted."""
        return self._param(lambda c: convert(c.value))

    def contained(self) -> Any:
        """Parameter: the JSON object ``{k1: {k2: value}}`` (the path around the value)."""

        def nest(c: JsonCond) -> str:
            document: Any = c.value
            for key in reversed(c.path):
                document = {key: document}
            return dump_json(document)

        return self._param(nest)


def _sql(*parts: Any) -> Any:
    return NodeList([SQL(p) if isinstance(p, str) else p for p in parts], glue="")


def _any(nodes: Sequence[Any]) -> Any:
    return _sql("(", NodeList(nodes, glue=" OR "), ")") if nodes else SQL("0 = 1")


def _literal(value: Any) -> str:
    """The JSON text of true, false and null."""
    return dump_json(value)


# --------------------------------------------------------------------------- SQLite

_SQLITE_TYPES: Final = {"string": "= 'text'", "number": "IN ('integer', 'real')"}


def _sqlite_test(item: str, kind: str, op: str, value: Any) -> Any:
    """The JSON item ``item`` (a json_each alias) ``op`` the parameter ``value``."""
    if kind in _SQLITE_TYPES:
        sign = {"eq": "=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
        return _sql(f"({item}.type {_SQLITE_TYPES[kind]} AND {item}.atom {sign} ", value, ")")
    return _sql(f"{item}.type = ", value)  # true, false, null: the type says it all


def sqlite_json(field: Any, lookup: JsonLookup) -> Any:
    """SQLite: EXISTS over ``json_each`` per key; the last item tested by type and atom."""
    sources = [_sql("json_each(", field, ") AS j1")]
    conds = [_sql("j1.key = ", lookup.key(0))]
    for i in range(2, lookup.depth + 1):
        parent = f"j{i - 1}"
        sources.append(
            SQL(f"json_each(CASE WHEN {parent}.type = 'object' THEN {parent}.value END) AS j{i}")
        )
        conds.append(_sql(f"j{i}.key = ", lookup.key(i - 1)))
    item = f"j{lookup.depth}"
    op = lookup.op
    if op == "has_key":
        test = None
    elif op in ("in", "not_in"):
        listed = _sql(
            "EXISTS (SELECT 1 FROM json_each(",
            lookup.items(lambda values: dump_json(list(values))),
            f") AS w WHERE (w.type = {item}.type OR (w.type IN ('integer', 'real') AND "
            f"{item}.type IN ('integer', 'real'))) AND w.atom IS {item}.atom)",
        )
        test = listed if op == "in" else _sql("NOT ", listed)
    else:
        kind = lookup.kinds[0]
        convert = _literal if kind not in _SQLITE_TYPES else (lambda v: v)
        equal_op = "eq" if op == "ne" else op
        test = _sqlite_test(item, kind, equal_op, lookup.value(convert))
        if op == "ne":
            test = _sql("NOT ", test)
    if test is not None:
        conds.append(test)
    exists = _sql(
        "EXISTS (SELECT 1 FROM ",
        NodeList(sources, glue=", "),
        " WHERE ",
        NodeList(conds, glue=" AND "),
        ")",
    )
    if op == "has_key" and not lookup.exists:
        return _sql("NOT ", exists)
    return exists


# --------------------------------------------------------------------------- PostgreSQL


def _pg_value(field: Any, lookup: JsonLookup) -> Any:
    node: Any = peewee.Cast(field, "jsonb")
    for i in range(lookup.depth):
        node = _sql("(", node, " -> ", peewee.Cast(lookup.key(i), "text"), ")")
    return node


def postgres_json(field: Any, lookup: JsonLookup) -> Any:
    """PostgreSQL: ``jsonb`` operators on the column cast to ``jsonb``."""
    op = lookup.op
    if op == "eq":
        # Containment of {k1: {k2: value}} is equality at the path for a scalar value
        # (a nested scalar is never contained in an array), and what the GIN index
        # on (column::jsonb) jsonb_path_ops serves.
        return _sql(
            "(", peewee.Cast(field, "jsonb"), " @> ", peewee.Cast(lookup.contained(), "jsonb"), ")"
        )
    found = _pg_value(field, lookup)
    if op == "has_key":
        return _sql("(", found, " IS NOT NULL)" if lookup.exists else " IS NULL)")
    if op == "ne":
        # NULL (a missing key) is never different: the row is left out, as wanted.
        return _sql("(", found, " <> ", peewee.Cast(lookup.value(dump_json), "jsonb"), ")")
    if op in ("in", "not_in"):
        listed = _sql(
            "(", found, " = ANY(",
            peewee.Cast(lookup.items(lambda values: [dump_json(v) for v in values]), "jsonb[]"),
            "))",
        )  # fmt: skip
        return listed if op == "in" else _sql("(NOT ", listed, ")")
    sign = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
    if lookup.kinds[0] == _NUMBER:
        return _sql(
            "(jsonb_typeof(", found, ") = 'number' AND ", found, f" {sign} ",
            peewee.Cast(lookup.value(dump_json), "jsonb"), ")",
        )  # fmt: skip
    return _sql(
        "(jsonb_typeof(", found, ") = 'string' AND (", found, " #>> '{}') COLLATE \"C\" ",
        f"{sign} ", peewee.Cast(lookup.value(), "text"), ")",
    )  # fmt: skip


# --------------------------------------------------------------------------- MariaDB


def _mariadb_test(found: Any, kind: str, op: str, value: Any) -> Any:
    """``found`` (a JSON_EXTRACT, not NULL) ``op`` the parameter ``value`` as JSON."""
    if kind == _NUMBER:
        sign = {"eq": "=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
        # Each cast only for its own type: exact integers, no conversion warnings.
        return _sql(
            "(CASE JSON_TYPE(", found, ") WHEN 'INTEGER' THEN CAST(JSON_UNQUOTE(", found,
            f") AS SIGNED) {sign} ", value, " WHEN 'DOUBLE' THEN CAST(JSON_UNQUOTE(", found,
            f") AS DOUBLE) {sign} ", value, " ELSE 0 END)",
        )  # fmt: skip
    if kind == _STRING:
        sign = {"eq": "=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
        return _sql(
            "(CASE WHEN JSON_TYPE(", found, ") = 'STRING' THEN JSON_UNQUOTE(", found,
            f") COLLATE utf8mb4_nopad_bin {sign} ", value, " ELSE 0 END)",
        )  # fmt: skip
    # true, false, null: JSON_EXTRACT gives their JSON text, and no other value has it.
    return _sql("(JSON_TYPE(", found, ") IN ('BOOLEAN', 'NULL') AND ", found, " = ", value, ")")


def mariadb_json(field: Any, lookup: JsonLookup) -> Any:
    """MariaDB: ``JSON_EXTRACT`` at a bound JSON path, typed with ``JSON_TYPE``."""
    found = _sql("JSON_EXTRACT(", field, ", ", lookup.json_path(), ")")
    op = lookup.op
    if op == "has_key":
        return _sql("(", found, " IS NOT NULL)" if lookup.exists else " IS NULL)")
    if op in ("in", "not_in"):
        tests = [
            _mariadb_test(found, kind, "eq", lookup.item(i, _mariadb_param(kind)))
            for i, kind in enumerate(lookup.kinds)
        ]
        listed = _any(tests)
        if op == "in":
            return listed
        return _sql("(", found, " IS NOT NULL AND NOT ", listed, ")")
    kind = lookup.kinds[0]
    test = _mariadb_test(
        found, kind, "eq" if op == "ne" else op, lookup.value(_mariadb_param(kind))
    )
    if op == "ne":
        return _sql("(", found, " IS NOT NULL AND NOT ", test, ")")
    return test


def _mariadb_param(kind: str) -> Callable[[Any], Any]:
    return (lambda v: v) if kind in (_NUMBER, _STRING) else _literal
