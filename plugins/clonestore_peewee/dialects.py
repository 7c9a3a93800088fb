"""Where SQLite and PostgreSQL need different SQL for one meaning.

Everything else is Peewee's own SQL. Each dialect builds Peewee nodes, never
SQL text, for the few operators the engines spell differently:

* text ``contains``: ``instr`` (SQLite) / ``strpos`` (PostgreSQL). Never
  ``LIKE``: SQLite's is case-insensitive and both treat ``%``, ``_`` and
  ``\\`` as wildcards, while clonestore matches literally.
* list ``contains`` (has every item) and ``overlap`` (has any): ``json_each``
  over JSON text / the array operators ``@>`` and ``&&``.
* big ``in`` lists: one JSON array parameter read with ``json_each`` / one
  array parameter with ``= ANY``, so a long list is one statement shape.
* ``min``/``max`` of booleans (``bool_and``/``bool_or``) and UUIDs (as text)
  on PostgreSQL, which has no ``min(boolean)`` or ``min(uuid)``.
"""

from __future__ import annotations

import abc
from typing import Any, Final

import peewee
from peewee import SQL, Entity, Expression, fn

from .codecs import POSTGRES_CODECS, SQLITE_CODECS, Codecs

__all__ = ["POSTGRES", "SQLITE", "Dialect"]

_ZERO: Final = SQL("0")
_ONE: Final = SQL("1")


class Dialect(abc.ABC):
    """The SQL an engine needs for the operators it spells its own way."""

    name: str = "?"
    codecs: Codecs

    @abc.abstractmethod
    def text_contains(self, field: Any, param: Any) -> Any:
        """Literal, case-sensitive substring test of a text column."""

    @abc.abstractmethod
    def list_contains(self, field: Any, param: Any) -> Any:
        """The list column holds every item of the parameter."""

    @abc.abstractmethod
    def list_overlap(self, field: Any, param: Any) -> Any:
        """The list column holds at least one item of the parameter."""

    @abc.abstractmethod
    def in_array(self, field: Any, param: Any, kind: str) -> Any:
        """The column equals one of the values of an array parameter."""

    @abc.abstractmethod
    def not_in_array(self, field: Any, param: Any, kind: str) -> Any:
        """The column is not NULL and equals none of an array parameter's values."""

    def min_max(self, fn_name: str, field: Any, kind: str) -> Any:
        return fn.MIN(field) if fn_name == "min" else fn.MAX(field)

    # Shared by both engines: substr/length count characters on both.

    def starts_with(self, field: Any, param: Any) -> Any:
        return fn.substr(field, _ONE, fn.length(param)) == param

    def ends_with(self, field: Any, param: Any) -> Any:
        # When the suffix is longer than the value, the start is <= 0 and the
        # substring is shorter than the suffix: no match, as wanted.
        return fn.substr(field, fn.length(field) - fn.length(param) + _ONE) == param


class _SqliteDialect(Dialect):
    name = "sqlite"
    codecs = SQLITE_CODECS

    def text_contains(self, field: Any, param: Any) -> Any:
        return fn.instr(field, param) > _ZERO

    def list_contains(self, field: Any, param: Any) -> Any:
        # Every wanted item is among the column's items.
        items = peewee.Select([fn.json_each(field)], [Entity("value")])
        missing = peewee.Select([fn.json_each(param).alias("wanted")], [_ONE]).where(
            Entity("wanted", "value").not_in(items)
        )
        return field.is_null(False) & ~fn.EXISTS(missing)

    def list_overlap(self, field: Any, param: Any) -> Any:
        wanted = peewee.Select([fn.json_each(param)], [Entity("value")])
        found = peewee.Select([fn.json_each(field).alias("item")], [_ONE]).where(
            Entity("item", "value").in_(wanted)
        )
        return fn.EXISTS(found)

    def in_array(self, field: Any, param: Any, kind: str) -> Any:
        return field.in_(peewee.Select([fn.json_each(param)], [Entity("value")]))

    def not_in_array(self, field: Any, param: Any, kind: str) -> Any:
        return field.not_in(peewee.Select([fn.json_each(param)], [Entity("value")]))


_PG_ARRAY_TYPES: Final = {
    "id": "uuid[]",
    "key": "text[]",
    "text": "text[]",
    "int": "bigint[]",
    "float": "double precision[]",
    "bool": "boolean[]",
    "datetime": "timestamptz[]",
    "decimal": "numeric[]",
}


class _PostgresDialect(Dialect):
    name = "postgresql"
    codecs = POSTGRES_CODECS

    def text_contains(self, field: Any, param: Any) -> Any:
        return fn.strpos(field, param) > _ZERO

    def list_contains(self, field: Any, param: Any) -> Any:
        return Expression(field, "@>", peewee.Cast(param, "text[]"))

    def list_overlap(self, field: Any, param: Any) -> Any:
        return Expression(field, "&&", peewee.Cast(param, "text[]"))

    def in_array(self, field: Any, param: Any, kind: str) -> Any:
        return field == fn.ANY(peewee.Cast(param, _PG_ARRAY_TYPES[kind]))

    def not_in_array(self, field: Any, param: Any, kind: str) -> Any:
        # NOT (NULL = ANY(...)) is NULL: a NULL value is never "not in", as in memory.
        return ~(field == fn.ANY(peewee.Cast(param, _PG_ARRAY_TYPES[kind])))

    def min_max(self, fn_name: str, field: Any, kind: str) -> Any:
        if kind == "bool":
            return fn.bool_and(field) if fn_name == "min" else fn.bool_or(field)
        if kind == "id":
            as_text = peewee.Cast(field, "text").collate('"C"')
            return fn.MIN(as_text) if fn_name == "min" else fn.MAX(as_text)
        return super().min_max(fn_name, field, kind)


SQLITE: Final[Dialect] = _SqliteDialect()
POSTGRES: Final[Dialect] = _PostgresDialect()
