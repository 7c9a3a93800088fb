"""Peewee field classes for the storage type of each column kind.

Each field names an abstract type (``CS_DATETIME``...) that the engine's
database class maps to a concrete SQL type (see :data:`SQLITE_TYPES` and
:data:`POSTGRES_TYPES`). Live models (built from table specs) and the frozen
models of migrations use these same classes, so a migration declares exactly
the types the backend reads and writes. Changing a mapping here changes the
meaning of old migrations: add a new field class instead (as ``TextIdField``
for ids, ``UUID`` / ``VARCHAR(36)`` in ``IdField`` before migration 0005, which
converts existing columns).

The fields only describe DDL. Values never go through Peewee's converters on
the hot path; the backend's own per-kind codecs (:mod:`.codecs`) do that.

=========  ===================================  ==============================
kind       SQLite                               PostgreSQL
=========  ===================================  ==============================
id         TEXT (BINARY: code point order)      TEXT COLLATE "C" (UUID before 0005)
key/text   TEXT (BINARY: code point order)      TEXT COLLATE "C"
int        INTEGER                              BIGINT
float      REAL                                 DOUBLE PRECISION
bool       INTEGER 0/1                          BOOLEAN
datetime   INTEGER microseconds since epoch     TIMESTAMPTZ
decimal    INTEGER micro-units (10^-6)          NUMERIC(18, 6)
json       TEXT (JSON text, kept verbatim)      JSON (text kept verbatim)
list       TEXT (JSON array of strings)         TEXT[]
vector     BLOB (little-endian float32)         REAL[] (DOUBLE PRECISION[] before
                                                0012; pgvector ``vector`` after it)
=========  ===================================  ==============================

MariaDB (:data:`MARIADB_TYPES`): text, key, json and list columns are
``LONGTEXT`` in ``utf8mb4_nopad_bin`` (code point order, case- and
trailing-space-exact; JSON as verbatim text, so key order survives), ids
``VARCHAR(128)`` in the same collation (``VARCHAR(36)`` before migration 0005),
``DATETIME(6)`` in UTC, ``DECIMAL(18, 6)``, ``DOUBLE``, ``BOOL`` and vectors as ``LONGBLOB``.
"""

from __future__ import annotations

from typing import Any, Final

import peewee

__all__ = [
    "FIELD_CLASSES",
    "MARIADB_TYPES",
    "POSTGRES_TYPES",
    "SQLITE_TYPES",
    "BoolField",
    "DatetimeField",
    "Float32VectorField",
    "FloatField",
    "IdField",
    "IntField",
    "JsonField",
    "ListField",
    "MoneyField",
    "TextField",
    "TextIdField",
    "VectorField",
]


class _StorageField(peewee.Field):
    """A field that passes values through untouched (the backend converts them)."""

    def db_value(self, value: Any) -> Any:
        return value

    def python_value(self, value: Any) -> Any:
        return value


class IdField(_StorageField):
    """``id`` kind until migration 0005: a UUID. Frozen migrations before it use it."""

    field_type = "CS_ID"


class TextIdField(_StorageField):
    """``id`` kind: a string of 1 to 128 characters, ordered by code point."""

    field_type = "CS_TEXT_ID"


class TextField(_StorageField):
    """``text`` and ``key`` kinds, ordered by code point."""

    field_type = "CS_TEXT"


class IntField(_StorageField):
    """``int`` kind: signed 64 bits."""

    field_type = "CS_INT"


class FloatField(_StorageField):
    """``float`` kind: IEEE double."""

    field_type = "CS_FLOAT"


class BoolField(_StorageField):
    """``bool`` kind."""

    field_type = "CS_BOOL"


class DatetimeField(_StorageField):
    """``datetime`` kind: an instant with microseconds."""

    field_type = "CS_DATETIME"


class MoneyField(_StorageField):
    """``decimal`` kind: exact, six decimal places."""

    field_type = "CS_MONEY"


class JsonField(_StorageField):
    """``json`` kind: JSON text stored verbatim, so numbers keep their type."""

    field_type = "CS_JSON"


class ListField(_StorageField):
    """``list`` kind: strings, order and duplicates kept."""

    field_type = "CS_LIST"


class VectorField(_StorageField):
    """``vector`` kind until migration 0012: ``DOUBLE PRECISION[]`` on PostgreSQL.
    Frozen migrations before it use it."""

    field_type = "CS_VECTOR"


class Float32VectorField(_StorageField):
    """``vector`` kind: float32 items (``REAL[]`` on PostgreSQL; the core's migration
    0012 makes ``memories.embedding`` pgvector's ``vector`` where the server has it)."""

    field_type = "CS_VECTOR32"


#: Column kind -> field class.
FIELD_CLASSES: Final[dict[str, type[_StorageField]]] = {
    "id": TextIdField,
    "key": TextField,
    "text": TextField,
    "int": IntField,
    "float": FloatField,
    "bool": BoolField,
    "datetime": DatetimeField,
    "decimal": MoneyField,
    "json": JsonField,
    "list": ListField,
    "vector": Float32VectorField,
}

#: Abstract field type -> SQLite column type.
SQLITE_TYPES: Final[dict[str, str]] = {
    "CS_ID": "TEXT",
    "CS_TEXT_ID": "TEXT",
    "CS_TEXT": "TEXT",
    "CS_INT": "INTEGER",
    "CS_FLOAT": "REAL",
    "CS_BOOL": "INTEGER",
    "CS_DATETIME": "INTEGER",
    "CS_MONEY": "INTEGER",
    "CS_JSON": "TEXT",
    "CS_LIST": "TEXT",
    "CS_VECTOR": "BLOB",
    "CS_VECTOR32": "BLOB",
}

#: Abstract field type -> PostgreSQL column type. ``JSON`` rather than ``JSONB``:
#: JSONB re-formats numbers (``1e16`` comes back as an integer, ``-0.0`` as
#: ``0``), JSON keeps the text it was given.
POSTGRES_TYPES: Final[dict[str, str]] = {
    "CS_ID": "UUID",
    "CS_TEXT_ID": 'TEXT COLLATE "C"',
    "CS_TEXT": 'TEXT COLLATE "C"',
    "CS_INT": "BIGINT",
    "CS_FLOAT": "DOUBLE PRECISION",
    "CS_BOOL": "BOOLEAN",
    "CS_DATETIME": "TIMESTAMPTZ",
    "CS_MONEY": "NUMERIC(18, 6)",
    "CS_JSON": "JSON",
    "CS_LIST": "TEXT[]",
    "CS_VECTOR": "DOUBLE PRECISION[]",
    "CS_VECTOR32": "REAL[]",
}

_NOPAD_BIN: Final = "CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"

#: Abstract field type -> MariaDB column type. ``utf8mb4_nopad_bin``: MariaDB's
#: default collations fold case, and even ``utf8mb4_bin`` pads (``'a' = 'a '``).
#: JSON as ``LONGTEXT``: kept verbatim, key order included.
MARIADB_TYPES: Final[dict[str, str]] = {
    "CS_ID": f"VARCHAR(36) {_NOPAD_BIN}",
    "CS_TEXT_ID": f"VARCHAR(128) {_NOPAD_BIN}",
    "CS_TEXT": f"LONGTEXT {_NOPAD_BIN}",
    "CS_INT": "BIGINT",
    "CS_FLOAT": "DOUBLE",
    "CS_BOOL": "BOOL",
    "CS_DATETIME": "DATETIME(6)",
    "CS_MONEY": "DECIMAL(18, 6)",
    "CS_JSON": f"LONGTEXT {_NOPAD_BIN}",
    "CS_LIST": f"LONGTEXT {_NOPAD_BIN}",
    "CS_VECTOR": "LONGBLOB",
    "CS_VECTOR32": "LONGBLOB",
}
