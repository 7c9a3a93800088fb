"""0013: a turn is never older than its session (issue 25, time partitions).

From this version ``add_turn`` refuses a ``created_at`` before the session's, so a
session's turns are read with ``created_at >= session.created_at``, which lets a
time-partitioned ``turns`` (PostgreSQL's ``layout=partitioned``, see
``clonestore_peewee.postgres._partitions``) skip the months before the session.
Turns older than their session were possible before, through imported times: this
migration counts them and, if there are any, refuses, naming the count and the
query that lists them, and changes nothing. Give those turns (or their sessions)
consistent times, then migrate again. The schema itself does not change (the
partitioned layout is an option of the backend, applied after the migrations).

``down`` does nothing.

Frozen at this version: the tables and columns are written out here.
"""

from __future__ import annotations

from typing import Any, Final

#: The turns older than their session.
OLDER_THAN_SESSION: Final = (
    "SELECT t.id FROM turns t JOIN sessions s ON s.id = t.session_id "
    "WHERE t.created_at < s.created_at"
)


def up(migrator: Any, db: Any) -> None:
    """Refuse turns older than their session."""
    (count,) = db.execute_sql(f"SELECT COUNT(*) FROM ({OLDER_THAN_SESSION}) x").fetchone()
    if count:
        raise RuntimeError(
            f"migration 0013_partitions refused: {count} turn(s) are older than their "
            f"session (created_at before the session's); nothing was changed. List them "
            f"with: {OLDER_THAN_SESSION}; give them (or their sessions) consistent times, "
            "then migrate again"
        )


def down(migrator: Any, db: Any) -> None:
    """Nothing to undo."""
