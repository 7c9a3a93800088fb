"""0011: operations (issue 26): statistics that stay cheap, and the maintenance lease.

* ``session_totals``: per user, the totals of their ended sessions (ended
  sessions take no more turns), kept by the core in the same transaction as
  each write that changes them; ``sessions.user_statistics`` adds the user's
  open sessions to them, so it reads one row and the few open sessions instead
  of every session. Backfilled here from the ended sessions already stored.
* an index on ``sessions (user_id, ended_at)``: the user's open sessions.
* ``maintenance_leases``: the row a ``maintain`` run holds, so one process at a
  time runs it.

Frozen at this version: the tables, columns and names are written out here.
"""

from __future__ import annotations

from typing import Any

from peewee import Model

from clonestore_peewee.sql._fields import (
    DatetimeField,
    IntField,
    MoneyField,
    TextField,
    TextIdField,
)

_BACKFILL = (
    "INSERT INTO session_totals (id, user_id, ended_sessions, total_turns, total_cost, "
    "total_latency_ms, first_started_at, last_started_at, version) "
    "SELECT user_id, user_id, COUNT(*), COALESCE(SUM(total_turns), 0), "
    "COALESCE(SUM(total_cost), 0), COALESCE(SUM(total_latency_ms), 0), "
    "MIN(started_at), MAX(started_at), 1 FROM sessions WHERE ended_at IS NOT NULL "
    "GROUP BY user_id"
)


def _models(db: Any) -> list[type[Model]]:
    class SessionTotals(Model):
        id = TextIdField(primary_key=True)
        user_id = TextIdField()
        ended_sessions = IntField()
        total_turns = IntField()
        total_cost = MoneyField()
        total_latency_ms = IntField()
        first_started_at = DatetimeField(null=True)
        last_started_at = DatetimeField(null=True)
        version = IntField()

        class Meta:
            database = db
            table_name = "session_totals"

    class MaintenanceLeases(Model):
        id = TextIdField(primary_key=True)
        holder = TextField()
        acquired_at = DatetimeField()
        expires_at = DatetimeField()

        class Meta:
            database = db
            table_name = "maintenance_leases"

    return [SessionTotals, MaintenanceLeases]


def up(migrator: Any, db: Any) -> None:
    """Create the tables and the index; fill ``session_totals`` from the ended sessions."""
    db.create_tables(_models(db), safe=True)
    migrator.migrate(
        migrator.add_index("sessions", ("user_id", "ended_at"), name="ix_sessions_user_id_ended_at")
    )
    db.execute_sql(_BACKFILL)


def down(migrator: Any, db: Any) -> None:
    """Drop the index and the tables."""
    migrator.migrate(migrator.drop_index("sessions", "ix_sessions_user_id_ended_at"))
    db.drop_tables(_models(db), safe=True)
