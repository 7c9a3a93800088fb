"""0004: pgvector on PostgreSQL, when the server has it.

On a PostgreSQL server that offers the ``vector`` extension (pgvector), the
extension is created and ``memories`` gets ``embedding_vec``: a single-precision
copy of ``embedding`` that the engine computes itself (a stored generated
column), so it is in step with every write, rollback and erasure. The
float64 ``embedding`` stays the stored truth; ``embedding_vec`` only lists
candidates, which the backend settles in double precision. A vector with an
item the engine cannot score exactly enough (not 0 and outside
``2**-50 .. 2**50`` in magnitude) gets NULL there: the backend scores those
rows itself.

Without pgvector (or without the right to create it) nothing changes: the
backend searches exactly in SQL over the stored arrays and says so in
``health()`` and ``clonestore doctor``. Other engines do not run it (``ENGINES``).

Frozen at this version: the function, table and column names are written out here.
"""

from __future__ import annotations

from typing import Any

from peewee import PostgresqlDatabase

#: PostgreSQL only: on other engines this migration is neither run, recorded nor listed.
ENGINES = ("postgresql",)

_AVAILABLE = "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
_INSTALLED = "SELECT 1 FROM pg_extension WHERE extname = 'vector'"

# 2**-50 and 2**50: the magnitudes an engine may score (clonestore.vectors.engine_safe).
_FUNCTION = """
CREATE OR REPLACE FUNCTION clonestore_engine_vector(double precision[]) RETURNS vector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN bool_and(x = 0 OR abs(x) BETWEEN 8.881784197001252e-16 AND 1125899906842624)
  THEN $1::vector END FROM unnest($1) AS x
$$
"""

_COLUMN = (
    "ALTER TABLE memories ADD COLUMN IF NOT EXISTS embedding_vec vector "
    "GENERATED ALWAYS AS (clonestore_engine_vector(embedding)) STORED"
)


def _one(db: Any, sql: str) -> bool:
    return db.execute_sql(sql).fetchone() is not None


def _postgres(db: Any) -> bool:
    return isinstance(db, PostgresqlDatabase)


def up(migrator: Any, db: Any) -> None:
    """Create the extension and ``memories.embedding_vec`` where pgvector is offered."""
    if not _postgres(db) or not _one(db, _AVAILABLE):
        return
    if not _one(db, _INSTALLED):
        try:
            with db.atomic():  # a savepoint: a refused CREATE leaves the migration going
                db.execute_sql("CREATE EXTENSION IF NOT EXISTS vector")
        except Exception:  # not allowed to create it: the backend reports the fallback
            return
    db.execute_sql(_FUNCTION)
    db.execute_sql(_COLUMN)


def down(migrator: Any, db: Any) -> None:
    """Drop ``memories.embedding_vec`` and the function (the extension stays)."""
    if not _postgres(db):
        return
    db.execute_sql("ALTER TABLE memories DROP COLUMN IF EXISTS embedding_vec")
    db.execute_sql("DROP FUNCTION IF EXISTS clonestore_engine_vector(double precision[])")
