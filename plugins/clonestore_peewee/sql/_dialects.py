"""The dialect API: what a SQL engine fills in to run on the shared SQL layer.

A new SQL engine is a :class:`Dialect` (its types and collation, NULL order,
its spelling of a few operators, which SQL features it lacks, its error
translation) plus a small backend subclass of
:class:`clonestore_peewee.sql._backend.SQLBackend` for connections and
transactions. Everything else (statement shapes, parameters, rows, upserts,
migrations, emulation of missing features) is the shared layer's, rendered
by Peewee.

The API is versioned with the backend API, by one number until 1.0
(``clonestore.spi.API_VERSION``); a dialect says which version it was written
against in :attr:`Dialect.api_version`, and a backend refuses a newer one. The
one changelog is docs/backend-guide.md's, section 10.

Built in: :data:`SQLITE`, :data:`POSTGRES` and :data:`MARIADB`. Some operators they
spell differently:

* text ``contains``: ``instr`` (SQLite) / ``strpos`` (PostgreSQL). Never
  ``LIKE``: SQLite's is case-insensitive and both treat ``%``, ``_`` and
  ``\\`` as wildcards, while clonestore matches literally.
* list ``contains`` (has every item) and ``overlap`` (has any): ``json_each``
  over JSON text / the array operators ``@>`` and ``&&``.
* big ``in`` lists: one JSON array parameter read with ``json_each`` / one
  array parameter with ``= ANY``, so a long list is one statement shape.
* ``min``/``max`` of booleans (``bool_and``/``bool_or``) on PostgreSQL, which
  has no ``min(boolean)``.
"""

from __future__ import annotations

import abc
import copy
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

import peewee
from peewee import SQL, Entity, Expression, fn

from clonestore import ClonestoreError, ConfigurationError
from clonestore.spi import API_VERSION

from ._codecs import MARIADB_CODECS, POSTGRES_CODECS, SQLITE_CODECS, Codecs
from ._errors import (
    postgres_constraint_of,
    translate_mariadb,
    translate_postgres,
    translate_sqlite,
)
from ._fields import MARIADB_TYPES, POSTGRES_TYPES, SQLITE_TYPES
from ._json_lookups import JsonLookup, mariadb_json, postgres_json, sqlite_json

__all__ = [
    "MARIADB",
    "POSTGRES",
    "SQLITE",
    "Codecs",
    "Dialect",
    "DialectContext",
]


_ZERO: Final = SQL("0")
_ONE: Final = SQL("1")


class Dialect(abc.ABC):
    """What one SQL engine fills in: types, collation, NULL order, operators, the SQL
    features it lacks (the shared layer emulates them) and error translation.

    Subclass it, set the class attributes, implement the abstract methods; the
    other methods have defaults that fit engines close to standard SQL.
    """

    #: The API version this dialect was written against (``clonestore.spi.API_VERSION``,
    #: one number for the backend and dialect APIs until 1.0).
    api_version: ClassVar[int] = API_VERSION
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
    #: ``UPDATE ... RETURNING``; without it the layer selects the matching ids (``FOR
    #: UPDATE`` where the engine has it), updates those ids and reads them back, in
    #: one transaction.
    update_returning: ClassVar[bool] = True
    #: ``INSERT ... ON CONFLICT (columns) WHERE <scope> DO UPDATE ... RETURNING``;
    #: without it the layer locks the key's row in the constraint's scope, updates it
    #: or inserts, and when the insert loses a race on that same key (a duplicate on
    #: that constraint, per :meth:`duplicate_key`), tries again: never a read, a sum
    #: in Python and a write back.
    upsert_on_conflict: ClassVar[bool] = True

    def index_ddl(self, index: Any) -> Any | None:
        """The DDL node for one ``CREATE INDEX`` (of a live model, a frozen model or a
        migration), or None for Peewee's own. Engines without partial indexes or
        without indexes on long text rewrite them here (see :data:`MARIADB`'s: a
        unique constraint's scope as a generated column); the engine's Peewee
        database then renders with :class:`DialectContext`."""
        return None

    def duplicate_key(self, error: ClonestoreError) -> str | None:
        """The name of the unique index (or :meth:`primary_key_name`) an ``AlreadyExists``
        of :meth:`translate` without ``columns`` names, from the engine's structured
        report (never its message); None if the engine does not say. The backend fills
        the error's ``columns`` from the constraint of that name; with None it finds the
        constraint itself, after the failed statement, by looking for a live row that
        holds the written values (which needs an engine whose failed statement leaves the
        transaction usable, as SQLite's and MariaDB's do; PostgreSQL names the key)."""
        return None

    def index_name(self, name: str) -> str:
        """The name an index called ``name`` gets in this engine (engines with short
        identifiers shorten long ones, in :meth:`index_ddl` and here alike)."""
        return name

    def primary_key_name(self, table: str) -> str:
        """The name :meth:`duplicate_key` gives the primary key of ``table``."""
        return f"{table}_pkey"

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

    def json_lookup(self, field: Any, lookup: JsonLookup) -> Any:
        """The condition of one JSON key lookup (:class:`clonestore.query.JsonCond`) on a
        ``json`` column, meaning what :func:`clonestore.spi_reference.json_holds` means:
        ``lookup`` gives its shape (operator, path length, value types) and parameter
        nodes for its keys and values, which are always bound, never SQL text. Optional:
        a dialect without it refuses JSON key lookups with a ``ConfigurationError``."""
        raise ConfigurationError(f"the {self.name} dialect has no JSON key lookups")

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
        # LIMIT 1: SQLite 3.51's EXISTS-to-join rewrite (which skips subqueries with a
        # LIMIT) gave a row once per matching item under an OFFSET, so a row whose list
        # repeats a wanted item was counted twice.
        found = (
            peewee.Select([fn.json_each(field).alias("item")], [_ONE])
            .where(Entity("item", "value").in_(wanted))
            .limit(1)
        )
        return fn.EXISTS(found)

    def in_array(self, field: Any, param: Any, kind: str) -> Any:
        return field.in_(peewee.Select([fn.json_each(param)], [Entity("value")]))

    def json_lookup(self, field: Any, lookup: JsonLookup) -> Any:
        return sqlite_json(field, lookup)

    def not_in_array(self, field: Any, param: Any, kind: str) -> Any:
        return field.not_in(peewee.Select([fn.json_each(param)], [Entity("value")]))


_PG_ARRAY_TYPES: Final = {
    "id": "text[]",
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

    def duplicate_key(self, error: ClonestoreError) -> str | None:
        return postgres_constraint_of(error)

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

    def json_lookup(self, field: Any, lookup: JsonLookup) -> Any:
        return postgres_json(field, lookup)

    def min_max(self, fn_name: str, field: Any, kind: str) -> Any:
        if kind == "bool":
            return fn.bool_and(field) if fn_name == "min" else fn.bool_or(field)
        return super().min_max(fn_name, field, kind)


class DialectContext(peewee.Context):
    """A Peewee rendering context that lets :attr:`dialect` rewrite index DDL
    (:meth:`Dialect.index_ddl`): the ``context_class`` of an engine's Peewee
    database when its dialect needs that."""

    dialect: ClassVar[Dialect]

    def sql(self, obj: Any) -> Any:
        """Render ``obj``; an index as the dialect's DDL when it has its own."""
        render: Any = super().sql
        if isinstance(obj, peewee.Index):
            node = self.dialect.index_ddl(obj)
            if node is not None:
                return render(node)
        return render(obj)


#: Column types whose values can be too long for a MariaDB index key: plain indexes
#: take a prefix of them (unique ones become MariaDB's hashed long unique keys).
_LONG_TYPES: Final = frozenset({"CS_TEXT", "CS_JSON", "CS_LIST", "CS_VECTOR", "CS_VECTOR32"})
#: Characters of a long text column a plain MariaDB index keeps (4 bytes each).
_INDEX_PREFIX: Final = 255
#: MariaDB's longest identifier.
_MAX_NAME: Final = 64


class _ScopedUnique(peewee.Node):
    """A unique constraint with a scope, on an engine without partial indexes: a
    generated column that is 1 inside the scope and NULL outside (NULLs never
    clash), appended to the unique index, in one ``ALTER TABLE``."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self.scope = f"{index._name[: _MAX_NAME - 6]}_scope"  # a name of at most 64

    def __sql__(self, ctx: Any) -> Any:
        index = self.index
        with ctx.scope_values(subquery=True):
            ctx.literal("ALTER TABLE ").sql(index._table).literal(" ADD COLUMN ")
            ctx.sql(Entity(self.scope)).literal(" TINYINT AS (IF(").sql(index._where)
            ctx.literal(", 1, NULL)) PERSISTENT, ADD UNIQUE INDEX ").sql(Entity(index._name))
            columns = [SQL(e) if isinstance(e, str) else e for e in index._expressions]
            ctx.literal(" ").sql(peewee.EnclosedNodeList([*columns, Entity(self.scope)]))
        return ctx


class _MariadbDialect(Dialect):
    name = "mariadb"
    codecs = MARIADB_CODECS
    field_types = MARIADB_TYPES
    array_params = False
    update_returning = False
    upsert_on_conflict = False

    def translate(
        self, exc: BaseException, where: str, secrets: Sequence[str | None] = ()
    ) -> ClonestoreError:
        return translate_mariadb(exc, where, secrets)

    def primary_key_name(self, table: str) -> str:
        return "PRIMARY"

    def index_name(self, name: str) -> str:
        if len(name) <= _MAX_NAME:
            return name
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        return f"{name[: _MAX_NAME - 9]}_{digest}"

    def index_ddl(self, index: Any) -> Any | None:
        short = self.index_name(index._name)
        if short != index._name:
            index = copy.copy(index)
            index._name = short
            return self.index_ddl(index) or index
        if index._unique:
            return None if index._where is None else _ScopedUnique(index)
        long = [
            isinstance(e, peewee.Field) and e.field_type in _LONG_TYPES for e in index._expressions
        ]
        if index._where is None and not any(long):
            return None
        # A partial plain index becomes a full one: it serves the same reads.
        columns = [
            peewee.NodeList((Entity(e.column_name), SQL(f"({_INDEX_PREFIX})")), glue="")
            if is_long
            else e
            for e, is_long in zip(index._expressions, long, strict=True)
        ]
        return peewee.Index(index._name, index._table, columns, unique=False, safe=index._safe)

    def order_term(self, field: Any, desc: bool, nullable: bool) -> Any:
        # No NULLS FIRST/LAST: Peewee sorts on IS NULL first, which only nullable
        # columns need (it would keep a NOT NULL column's index from serving the order).
        if not nullable:
            return field.desc() if desc else field.asc()
        return super().order_term(field, desc, nullable)

    def text_contains(self, field: Any, param: Any) -> Any:
        # LOCATE compares in the column's collation (code points, no padding).
        return fn.LOCATE(param, field) > _ZERO

    def starts_with(self, field: Any, param: Any) -> Any:
        return fn.LEFT(field, fn.CHAR_LENGTH(param)) == param

    def ends_with(self, field: Any, param: Any) -> Any:
        return fn.RIGHT(field, fn.CHAR_LENGTH(param)) == param

    def list_contains(self, field: Any, param: Any) -> Any:
        # Both sides are JSON text written by dump_json: equal strings, equal text.
        return field.is_null(False) & (fn.JSON_CONTAINS(field, param) == _ONE)

    def list_overlap(self, field: Any, param: Any) -> Any:
        return fn.JSON_OVERLAPS(field, param) == _ONE

    def json_lookup(self, field: Any, lookup: JsonLookup) -> Any:
        return mariadb_json(field, lookup)


#: SQLite's dialect.
SQLITE: Final[Dialect] = _SqliteDialect()
#: PostgreSQL's dialect.
POSTGRES: Final[Dialect] = _PostgresDialect()
#: MariaDB's dialect (10.9 and later: ``JSON_OVERLAPS``, ``utf8mb4_nopad_bin``).
MARIADB: Final[Dialect] = _MariadbDialect()
