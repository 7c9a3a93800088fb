"""The dialect API: what a SQL engine fills in to run on the shared SQL layer.

A new SQL engine is a :class:`Dialect` (its types and collation, NULL order,
its spelling of a few operators, which SQL features it lacks, its error
translation) plus a small backend subclass of
:class:`clonestore_peewee.backend.SQLBackend` for connections and
transactions. Everything else (statement shapes, parameters, rows, upserts,
migrations, emulation of missing features) is the shared layer's, rendered
by Peewee.

The API is versioned by :data:`DIALECT_API_VERSION`; a dialect says which
version it was written against in :attr:`Dialect.api_version`. Changes only
add optional parts (with defaults that keep older dialects working) until
the version changes; the changelog is in docs/backend-guide.md, section 9.

Built in: :data:`SQLITE` and :data:`POSTGRES`. The operators they spell differently:

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
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

import peewee
from peewee import SQL, Entity, Expression, fn

from clonestore import ClonestoreError

from .codecs import POSTGRES_CODECS, SQLITE_CODECS, Codecs
from .errors import translate_postgres, translate_sqlite
from .fields import POSTGRES_TYPES, SQLITE_TYPES

__all__ = ["DIALECT_API_VERSION", "POSTGRES", "SQLITE", "Codecs", "Dialect"]

#: The version of the dialect API (this module's :class:`Dialect`) this release
#: implements. A dialect declares the version it was written against as
#: :attr:`Dialect.api_version`; a backend refuses a dialect newer than this.
DIALECT_API_VERSION: Final = 1

_ZERO: Final = SQL("0")
_ONE: Final = SQL("1")


class Dialect(abc.ABC):
    """What one SQL engine fills in: types, collation, NULL order, operators, the SQL
    features it lacks (the shared layer emulates them) and error translation.

    Subclass it, set the class attributes, implement the abstract methods; the
    other methods have defaults that fit engines close to standard SQL.
    """

    #: The dialect API version this dialect was written against (:data:`DIALECT_API_VERSION`).
    api_version: ClassVar[int] = DIALECT_API_VERSION
    #: The engine's name, as in messages and ``health()``.
    name: str = "?"
    #: Converters between each column kind's Python value and the driver's value
    #: (``datetime`` as the engine stores it, ``decimal`` exact, ``json`` as text...).
    codecs: Codecs
    #: Abstract field type (``CS_ID``, ``CS_TEXT``... of :mod:`.fields`) -> the engine's
    #: column type, collation included: text and key columns compare, sort and stay
    #: unique by code point, case- and trailing-space-exact.
    field_types: ClassVar[Mapping[str, str]]
    #: Whether a long ``in`` list can be one array parameter (:meth:`in_array`); else
    #: each value gets its own placeholder.
    array_params: ClassVar[bool] = True

    @abc.abstractmethod
    def translate(
        self, exc: BaseException, where: str, secrets: Sequence[str | None] = ()
    ) -> ClonestoreError:
        """The clonestore error for a driver exception: ``AlreadyExists`` (duplicate
        key), ``Conflict`` (deadlock, serialization failure), ``StorageUnavailable``
        (unreachable, timed out, busy, pool exhausted), ``ConfigurationError`` (login
        refused, no such database), else ``BackendError``; ``orig`` set, ``secrets``
        redacted from the message, values never shown."""

    def order_term(self, field: Any, desc: bool, nullable: bool) -> Any:
        """One ORDER BY term: NULLs last ascending, first descending. Peewee spells
        ``NULLS FIRST/LAST`` or, on engines without it, sorts on ``IS NULL`` first.
        A NOT NULL column gets a plain term, which an index in that order serves (SQLite
        3.51's planner sorts rather than read an index for ``NULLS LAST``)."""
        if not nullable:
            return field.desc() if desc else field.asc()
        return field.desc(nulls="FIRST") if desc else field.asc(nulls="LAST")

    @abc.abstractmethod
    def text_contains(self, field: Any, param: Any) -> Any:
        """Literal, case-sensitive substring test of a text column."""

    @abc.abstractmethod
    def list_contains(self, field: Any, param: Any) -> Any:
        """The list column holds every item of the parameter."""

    @abc.abstractmethod
    def list_overlap(self, field: Any, param: Any) -> Any:
        """The list column holds at least one item of the parameter."""

    def in_array(self, field: Any, param: Any, kind: str) -> Any:
        """The column equals one of the values of an array parameter (with
        :attr:`array_params`)."""
        raise NotImplementedError(f"{self.name} has no array parameters")

    def not_in_array(self, field: Any, param: Any, kind: str) -> Any:
        """The column is not NULL and equals none of an array parameter's values (with
        :attr:`array_params`)."""
        raise NotImplementedError(f"{self.name} has no array parameters")

    def min_max(self, fn_name: str, field: Any, kind: str) -> Any:
        """``min`` or ``max`` of a column of ``kind`` (read back with the kind's codec)."""
        return fn.MIN(field) if fn_name == "min" else fn.MAX(field)

    def starts_with(self, field: Any, param: Any) -> Any:
        """Literal, case-sensitive prefix test (``substr``/``length`` in characters)."""
        return fn.substr(field, _ONE, fn.length(param)) == param

    def ends_with(self, field: Any, param: Any) -> Any:
        """Literal, case-sensitive suffix test."""
        # When the suffix is longer than the value, the start is <= 0 and the
        # substring is shorter than the suffix: no match, as wanted.
        return fn.substr(field, fn.length(field) - fn.length(param) + _ONE) == param


class _SqliteDialect(Dialect):
    name = "sqlite"
    codecs = SQLITE_CODECS
    field_types = SQLITE_TYPES

    def translate(
        self, exc: BaseException, where: str, secrets: Sequence[str | None] = ()
    ) -> ClonestoreError:
        return translate_sqlite(exc, where)

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
    field_types = POSTGRES_TYPES

    def translate(
        self, exc: BaseException, where: str, secrets: Sequence[str | None] = ()
    ) -> ClonestoreError:
        return translate_postgres(exc, where, secrets)

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


#: SQLite's dialect.
SQLITE: Final[Dialect] = _SqliteDialect()
#: PostgreSQL's dialect.
POSTGRES: Final[Dialect] = _PostgresDialect()
