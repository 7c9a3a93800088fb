"""0009: vectors stored once, as float32, in place (SQLite and MariaDB).

Every embedding is rounded to float32 by the core before it is written (the
values pgvector, sqlite-vec and embedding models keep), so the float64 blobs
older versions wrote hold float32 values in twice the bytes. This migration
rewrites each ``memories.embedding`` blob as little-endian float32 (what the
backends now read and write, and what sqlite-vec reads directly): half the
bytes, the same values read back. A blob with an item beyond float32's range
(written before the core rounded vectors) has no float32 form: it becomes NULL
(the memory stays, without an embedding, which ``similar`` never returns), and
the count is logged.

**Resumable, with progress.** The script runs outside one big transaction
(``atomic = False``): it converts rows in id order, ``BATCH`` at a time, each
batch in its own transaction together with its progress row in
``clonestore_progress_0009`` (the last id converted, the rows done). Stopped
anywhere, it resumes after the last committed batch when run again; progress is
logged (logger ``clonestore.migrations``) after every batch. When a direction
has converted every row, its progress row is marked finished, so a run stopped
between that and the runner recording the migration converts nothing the second
time: no moment of ``up`` is unsafe to interrupt. The small progress table stays
where rows were converted (it is what makes that so; on a database without
vectors it is dropped); ``down`` drops it.

PostgreSQL is not concerned yet (``ENGINES``): its vectors are still
``double precision[]`` with pgvector's generated copy (migration 0004).

``down`` converts the blobs back to float64 (the same values), in one pass.

Frozen at this version: the table, column and progress table names are written out here.
"""

from __future__ import annotations

import logging
import struct
from typing import Any, Final

from peewee import MySQLDatabase, SqliteDatabase

#: SQLite and MariaDB (their vectors are blobs): elsewhere neither run nor recorded.
ENGINES = ("sqlite", "mariadb")
#: Batches commit one by one (see the module docstring).
atomic = False

#: Rows converted per transaction.
BATCH: Final = 2000
PROGRESS: Final = "clonestore_progress_0009"
_COLUMNS: Final = (("memories", "embedding"),)

log = logging.getLogger("clonestore.migrations")


def _quote(db: Any, name: str) -> str:
    return f"`{name}`" if isinstance(db, MySQLDatabase) else f'"{name}"'


def _narrowed(blob: bytes) -> bytes | None:
    count = len(blob) // 8
    try:
        return struct.pack(f"<{count}f", *struct.unpack(f"<{count}d", blob))
    except OverflowError:  # an item beyond float32's range
        return None


def _widened(blob: bytes) -> bytes:
    count = len(blob) // 4
    return struct.pack(f"<{count}d", *struct.unpack(f"<{count}f", blob))


def _durable(db: Any) -> None:
    """Make the batch just written durable. On SQLite the schema session is a
    transaction holding the write lock (``BEGIN IMMEDIATE``): commit it and begin it
    again. Elsewhere (MariaDB autocommits between statements) the batch's own
    transaction was the outermost, so it is committed already. Under a dry run
    (``migration_plan``) the database carries ``clonestore_planning``: nothing commits."""
    if isinstance(db, SqliteDatabase) and db.transaction_depth() == 1 and not getattr(
        db, "clonestore_planning", False
    ):
        db.top_transaction().commit(begin=True)  # type: ignore[no-untyped-call]


def _convert(db: Any, convert: Any, direction: str) -> None:
    p = db.param
    q = _quote(db, PROGRESS)
    db.execute_sql(
        f"CREATE TABLE IF NOT EXISTS {q} (table_name VARCHAR(64) NOT NULL, "
        "column_name VARCHAR(64) NOT NULL, direction VARCHAR(8) NOT NULL, "
        "last_id VARCHAR(255) NOT NULL, done INTEGER NOT NULL, "
        "finished INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (table_name, column_name, direction))"
    )
    for table, column in _COLUMNS:
        t, c = _quote(db, table), _quote(db, column)
        key = (table, column, direction)
        where_key = f"table_name = {p} AND column_name = {p} AND direction = {p}"
        db.execute_sql(
            f"INSERT INTO {q} (table_name, column_name, direction, last_id, done) "
            f"SELECT {p}, {p}, {p}, '', 0 FROM {t} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {q} WHERE {where_key}) LIMIT 1",
            (*key, *key),
        )
        total: int | None = None
        dropped = 0
        while True:
            with db.atomic():
                # Read inside the batch's transaction: another process resuming the
                # same migration takes over exactly where this one committed.
                found = db.execute_sql(
                    f"SELECT last_id, done, finished FROM {q} WHERE {where_key}", key
                ).fetchone()
                if found is None or found[2]:  # an empty table, or converted already
                    break
                last_id, done = found[0], int(found[1])
                if total is None:
                    total = done + int(
                        db.execute_sql(
                            f"SELECT count(*) FROM {t} WHERE id > {p} AND {c} IS NOT NULL",
                            (last_id,),
                        ).fetchone()[0]
                    )
                rows = db.execute_sql(
                    f"SELECT id, {c} FROM {t} WHERE id > {p} AND {c} IS NOT NULL "
                    f"ORDER BY id LIMIT {BATCH}",
                    (last_id,),
                ).fetchall()
                if not rows:
                    break
                changes = [(convert(bytes(blob)), id) for id, blob in rows]
                dropped += sum(1 for blob, _ in changes if blob is None)
                db.cursor().executemany(f"UPDATE {t} SET {c} = {p} WHERE id = {p}", changes)
                last_id, done = rows[-1][0], done + len(rows)
                db.execute_sql(
                    f"UPDATE {q} SET last_id = {p}, done = {p} WHERE {where_key}",
                    (last_id, done, *key),
                )
            _durable(db)
            log.info("0009_float32_vectors: %s.%s %d/%d rows", table, column, done, total)
        if dropped:
            log.warning(
                "0009_float32_vectors: %d vectors of %s.%s had items beyond float32's range "
                "and were set to NULL",
                dropped,
                table,
                column,
            )
    if direction == "down":
        # Undone: nothing of 0009 stays. (A downgrade stopped between this and the runner
        # forgetting 0009 would widen the blobs twice if run again: the one unsafe
        # moment, in a deliberate downgrade, not in the upgrade every store runs.)
        db.execute_sql(f"DROP TABLE {q}")
        return
    if db.execute_sql(f"SELECT 1 FROM {q} LIMIT 1").fetchone() is None:
        db.execute_sql(f"DROP TABLE {q}")  # nothing was converted: nothing to guard
        return
    with db.atomic():
        # Finished, in one transaction with nothing else: a rerun converts nothing.
        db.execute_sql(f"UPDATE {q} SET finished = 1 WHERE direction = {p}", (direction,))
    _durable(db)


def up(migrator: Any, db: Any) -> None:
    """Rewrite the float64 vector blobs as float32, batch by batch, resumably."""
    _convert(db, _narrowed, "up")


def down(migrator: Any, db: Any) -> None:
    """Rewrite the float32 vector blobs as float64 (the same values)."""
    _convert(db, _widened, "down")
