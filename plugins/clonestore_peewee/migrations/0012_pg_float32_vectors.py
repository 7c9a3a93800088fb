"""0012: PostgreSQL stores each vector once, as float32, in its native form.

Before, ``memories.embedding`` was ``double precision[]`` (the float32 values
the core keeps, in eight bytes an item) plus, with pgvector, migration 0004's
generated single-precision copy ``embedding_vec``: every vector stored twice.
This migration makes ``embedding`` itself pgvector's ``vector`` where the
extension is installed, and ``real[]`` where it is not; ``embedding_vec`` and
0004's function go. The values read back are the same float32 values.

With pgvector, the rows the engine cannot score (a vector whose norm is not 0
and outside ``2**-50 .. 2**50``: its products may leave float32's range) are
kept in a partial index, ``ix_memories_embedding_loose``, so that a search lists
them first, to be scored exactly, at no cost for the others (see
:mod:`clonestore_peewee.postgres._vectors`).

**Resumable, with progress** (as 0009): the script runs outside one big
transaction (``atomic = False``). It adds the new column, fills it in id order,
``BATCH`` rows a transaction, each batch with its progress row in
``clonestore_progress_0012`` (the last id converted, the rows done), logging
after every batch (logger ``clonestore.migrations``). Stopped anywhere, it
resumes after the last committed batch. The swap (the old column dropped, the
new one renamed, rows written since the batches caught up) is one transaction;
a rerun after it finds ``embedding`` converted and does nothing more. A stored
item beyond float32's range (never written since the core rounds vectors) makes
that vector NULL (logged); items too small for float32 become 0. Run it with the
writers stopped (the store refuses writes while a core migration is pending):
an older process changing a vector already converted would not be seen.

The dropped column's space is reused by later writes; ``VACUUM FULL memories``
returns it to the system at once (not run here: it locks the table).

``down`` converts back the same way (``double precision[]`` holding the same
values, 0004's generated copy made again where pgvector is installed).

Other engines do not run it (``ENGINES``). Frozen at this version: the table,
column, function, index and progress table names are written out here.
"""

from __future__ import annotations

import logging
from typing import Any, Final

#: PostgreSQL only: elsewhere neither run, recorded nor listed.
ENGINES = ("postgresql",)
#: Batches commit one by one (see the module docstring).
atomic = False

#: Rows converted per transaction.
BATCH: Final = 2000
PROGRESS: Final = "clonestore_progress_0012"
_NEW: Final = "embedding_0012"

log = logging.getLogger("clonestore.migrations")

_INSTALLED: Final = "SELECT 1 FROM pg_extension WHERE extname = 'vector'"
_TYPE: Final = (
    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = 'memories'::regclass AND attname = %s AND NOT attisdropped"
)

# double precision[] -> real[]: NULL when an item is beyond float32's range (it would
# round to infinity), items that round to 0 written as 0 (the cast refuses them). The
# aggregate is computed whatever the CASE decides: it must not fail on either.
_TO_FLOAT32: Final = """
CREATE OR REPLACE FUNCTION clonestore_0012_float32(double precision[]) RETURNS real[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN cardinality($1) > 0 AND NOT bool_or(abs(x) >= 3.4028235677973366e38)
  THEN array_agg(CASE WHEN abs(x) <= 7.006492321624085e-46
                      OR abs(x) >= 3.4028235677973366e38 THEN 0 ELSE x END::real ORDER BY n) END
  FROM unnest($1) WITH ORDINALITY AS t(x, n)
$$
"""
_LOOSE_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS ix_memories_embedding_loose ON memories (id) "
    "WHERE NOT (vector_norm(embedding) = 0 OR vector_norm(embedding) "
    "BETWEEN 8.881784197001252e-16 AND 1125899906842624)"
)
# 0004's function and generated copy, made again by down (frozen copies of 0004's).
_ENGINE_FUNCTION: Final = """
CREATE OR REPLACE FUNCTION clonestore_engine_vector(double precision[]) RETURNS vector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN bool_and(x = 0 OR abs(x) BETWEEN 8.881784197001252e-16 AND 1125899906842624)
  THEN $1::vector END FROM unnest($1) AS x
$$
"""
_ENGINE_COPY: Final = (
    "ALTER TABLE memories ADD COLUMN IF NOT EXISTS embedding_vec vector "
    "GENERATED ALWAYS AS (clonestore_engine_vector(embedding)) STORED"
)


def _postgres(db: Any) -> bool:
    from peewee import PostgresqlDatabase

    return isinstance(db, PostgresqlDatabase)


def _one(db: Any, sql: str, params: Any = ()) -> Any:
    return db.execute_sql(sql, params).fetchone()


def _column_type(db: Any, name: str) -> str | None:
    found = _one(db, _TYPE, (name,))
    return None if found is None else str(found[0])


def _convert(db: Any, direction: str, new_type: str, conversion: str) -> None:
    """Fill ``embedding_0012`` (``new_type``) with ``conversion`` of ``embedding``, batch by
    batch with progress (see the module docstring)."""
    db.execute_sql(f"ALTER TABLE memories ADD COLUMN IF NOT EXISTS {_NEW} {new_type}")
    db.execute_sql(
        f"CREATE TABLE IF NOT EXISTS {PROGRESS} (direction TEXT PRIMARY KEY, "
        'last_id TEXT COLLATE "C" NOT NULL, done BIGINT NOT NULL)'
    )
    db.execute_sql(
        f"INSERT INTO {PROGRESS} (direction, last_id, done) VALUES (%s, '', 0) "
        "ON CONFLICT (direction) DO NOTHING",
        (direction,),
    )
    total: int | None = None
    dropped = 0
    while True:
        with db.atomic():
            # Read inside the batch's transaction: another process resuming the same
            # migration takes over exactly where this one committed.
            last_id, done = _one(
                db, f"SELECT last_id, done FROM {PROGRESS} WHERE direction = %s FOR UPDATE",
                (direction,),
            )  # fmt: skip
            if total is None:
                total = int(done) + int(
                    _one(
                        db,
                        "SELECT count(*) FROM memories WHERE id > %s AND embedding IS NOT NULL",
                        (last_id,),
                    )[0]
                )
            found = _one(
                db,
                "WITH batch AS (SELECT id FROM memories WHERE id > %s AND embedding IS NOT NULL "
                f"ORDER BY id LIMIT {BATCH}), changed AS (UPDATE memories AS m SET {_NEW} = "
                f"{conversion} FROM batch WHERE m.id = batch.id RETURNING m.id, m.{_NEW}) "
                f"SELECT max(id), count(*), count(*) FILTER (WHERE {_NEW} IS NULL) FROM changed",
                (last_id,),
            )
            if not found[1]:
                break
            last_id, done = found[0], int(done) + int(found[1])
            dropped += int(found[2])
            db.execute_sql(
                f"UPDATE {PROGRESS} SET last_id = %s, done = %s WHERE direction = %s",
                (last_id, done, direction),
            )
        log.info("0012_pg_float32_vectors: memories.embedding %d/%d rows", done, total)
    if dropped:
        log.warning(
            "0012_pg_float32_vectors: %d vectors of memories.embedding had items beyond "
            "float32's range and were set to NULL",
            dropped,
        )


def _swap(db: Any, conversion: str, before: tuple[str, ...], after: tuple[str, ...]) -> None:
    """One transaction: rows written since their batch caught up, the old column dropped and
    the new one named ``embedding``."""
    with db.atomic():
        db.execute_sql("LOCK TABLE memories IN SHARE ROW EXCLUSIVE MODE")
        db.execute_sql(
            f"UPDATE memories SET {_NEW} = {conversion} "
            f"WHERE {_NEW} IS NULL AND embedding IS NOT NULL"
        )
        for statement in before:
            db.execute_sql(statement)
        db.execute_sql("ALTER TABLE memories DROP COLUMN embedding")
        db.execute_sql(f"ALTER TABLE memories RENAME COLUMN {_NEW} TO embedding")
        for statement in after:
            db.execute_sql(statement)
        db.execute_sql(f"DROP TABLE IF EXISTS {PROGRESS}")


def up(migrator: Any, db: Any) -> None:
    """Store ``memories.embedding`` once, as ``vector`` (pgvector) or ``real[]``, batch by
    batch, resumably."""
    if not _postgres(db) or _column_type(db, "embedding") != "double precision[]":
        return  # converted already (a rerun after the swap)
    pgvector = _one(db, _INSTALLED) is not None
    db.execute_sql(_TO_FLOAT32)
    before: tuple[str, ...]
    after: tuple[str, ...]
    if pgvector:
        new_type, conversion = "vector", "clonestore_0012_float32(embedding)::vector"
        before = (
            "ALTER TABLE memories DROP COLUMN IF EXISTS embedding_vec",
            "DROP FUNCTION IF EXISTS clonestore_engine_vector(double precision[])",
        )
        after = (_LOOSE_INDEX,)
    else:
        new_type, conversion = "real[]", "clonestore_0012_float32(embedding)"
        before = after = ()
    _convert(db, "up", new_type, conversion)
    _swap(db, conversion, before, after)
    db.execute_sql("DROP FUNCTION IF EXISTS clonestore_0012_float32(double precision[])")


def down(migrator: Any, db: Any) -> None:
    """Store ``memories.embedding`` as ``double precision[]`` again (the same values), with
    0004's generated copy where pgvector is installed."""
    if not _postgres(db) or _column_type(db, "embedding") == "double precision[]":
        return
    conversion = "embedding::real[]::double precision[]"
    pgvector = _one(db, _INSTALLED) is not None
    before = ("DROP INDEX IF EXISTS ix_memories_embedding_loose",)
    after = (_ENGINE_FUNCTION, _ENGINE_COPY) if pgvector else ()
    _convert(db, "down", "double precision[]", conversion)
    _swap(db, conversion, before, after)
