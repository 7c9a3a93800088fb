"""The dialect API: everything a SQL engine's author imports, in one public, versioned module.

A new SQL engine is a :class:`Dialect` (its types and collation, NULL order,
its spelling of a few operators, which SQL features it lacks, its error
translation) plus a small subclass of :class:`SQLBackend` for connections and
transactions; the rest (statement shapes, parameters, rows, upserts,
migrations, emulation of missing features) is the shared SQL layer's. What the
members mean is documented where they are defined (``_dialects.py``,
``_backend.py``, ``_fields.py``) and in docs/backend-guide.md, section 9; the
version is ``clonestore.spi.API_VERSION``, one number with the backend API until 1.0.

* the dialect: :class:`Dialect`, :class:`Codecs`, :class:`DialectContext`, the
  built-in :data:`SQLITE`, :data:`POSTGRES` and :data:`MARIADB`;
* the backend base class :class:`SQLBackend`, its statement modes (:data:`ONE`,
  :data:`ALL`, :data:`ROWCOUNT`, :data:`NONE`, :data:`MANY`) and :func:`fetch`;
* the storage field types (``CS_ID``, ``CS_TEXT``, ...) as the built-in engines
  spell them: :data:`SQLITE_TYPES`, :data:`POSTGRES_TYPES`, :data:`MARIADB_TYPES`,
  and their Peewee classes :data:`FIELD_CLASSES`.

Nothing else of ``clonestore_peewee`` is public: its other modules are underscored.
"""

from __future__ import annotations

from .sql._backend import ALL, MANY, NONE, ONE, ROWCOUNT, SQLBackend, fetch
from .sql._dialects import (
    MARIADB,
    POSTGRES,
    SQLITE,
    Codecs,
    Dialect,
    DialectContext,
)
from .sql._fields import FIELD_CLASSES, MARIADB_TYPES, POSTGRES_TYPES, SQLITE_TYPES
from .sql._json_lookups import JsonLookup

__all__ = [
    "ALL",
    "FIELD_CLASSES",
    "MANY",
    "MARIADB",
    "MARIADB_TYPES",
    "NONE",
    "ONE",
    "POSTGRES",
    "POSTGRES_TYPES",
    "ROWCOUNT",
    "SQLITE",
    "SQLITE_TYPES",
    "Codecs",
    "Dialect",
    "DialectContext",
    "JsonLookup",
    "SQLBackend",
    "fetch",
]
