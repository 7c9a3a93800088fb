"""Per-user totals of ended sessions (table ``session_totals``), kept exact.

An ended session takes no more turns, so its totals only change when the
session itself is rewritten or removed (rare). ``sessions.end`` merges the
session into its owner's row; every other write that can change an ended
session (an update, an upsert, a removed turn, a hard delete, an erasure)
recounts the owner's row from the ended sessions. Either runs inside the
write's transaction, after locking the owner's row (an upsert of its
``version``, which makes an empty row when there is none), so concurrent
writers of one user's sessions take turns and no change is lost.
``user_statistics`` adds the user's open sessions, read live through the
``(user_id, ended_at)`` index.

The rows are derived data: written straight to the backend, not through the
gateway, so plugins see the session writes, not their bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

from clonestore._gateway import Gateway
from clonestore.query import And, Cond, Expr
from clonestore.records import SESSION_TOTALS, TABLES
from clonestore.spi import PRIMARY_KEY, Aggregate, Increment

__all__ = ["SessionTotals", "combine"]

_SESSIONS: Final = TABLES["sessions"]
_SUMS: Final = ("total_turns", "total_cost", "total_latency_ms")
#: What a user's row becomes, given it locked (returns None: delete it).
_Values = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]
_EMPTY: Final[Mapping[str, Any]] = {
    "ended_sessions": 0,
    "total_turns": 0,
    "total_cost": Decimal(0),
    "total_latency_ms": 0,
    "first_started_at": None,
    "last_started_at": None,
}
_AGGREGATES: Final = {
    "sessions": Aggregate("count"),
    "total_turns": Aggregate("sum", "total_turns"),
    "total_cost": Aggregate("sum", "total_cost"),
    "total_latency_ms": Aggregate("sum", "total_latency_ms"),
    "first_started_at": Aggregate("min", "started_at"),
    "last_started_at": Aggregate("max", "started_at"),
}


def _earliest(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def combine(totals: Mapping[str, Any] | None, live: Mapping[str, Any]) -> dict[str, Any]:
    """The ended sessions' ``totals`` row (or None) plus an aggregate of open sessions."""
    base = totals or _EMPTY
    return {
        "total_sessions": base["ended_sessions"] + live["sessions"],
        "active_sessions": live["sessions"],
        "total_turns": base["total_turns"] + (live["total_turns"] or 0),
        "total_cost": base["total_cost"] + (live["total_cost"] or Decimal(0)),
        "total_latency_ms": base["total_latency_ms"] + (live["total_latency_ms"] or 0),
        "first_started_at": _earliest(base["first_started_at"], live["first_started_at"]),
        "last_started_at": _latest(base["last_started_at"], live["last_started_at"]),
    }


class SessionTotals:
    """Reads and keeps the ``session_totals`` rows over one gateway's backend."""

    def __init__(self, gateway: Gateway) -> None:
        self._backend = gateway.backend
        self._gateway = gateway

    def read(self, user_id: str, action: str) -> dict[str, Any]:
        """The user's statistics: their ended sessions' row plus their open sessions."""
        live_where = And((Cond("user_id", "eq", user_id), Cond("ended_at", "isnull", True)))
        (live,) = self._gateway.aggregate(_SESSIONS, live_where, (), _AGGREGATES, action=action)
        return combine(self._backend.get(SESSION_TOTALS, user_id), live)

    def _write(self, user_id: str, values_for: _Values) -> None:
        """Lock the user's row, then write ``values_for(row)`` (None: delete the row).

        The row is locked by an upsert that makes it (empty) when there is none, so
        writers that meet no row at once still take turns on it: none computes from
        a row another is changing, on any engine (an insert that lost a race would
        leave InnoDB's shared lock behind and deadlock the next update).
        """
        empty = {"id": user_id, "user_id": user_id, "version": 1, **_EMPTY}
        current = self._backend.upsert(
            SESSION_TOTALS, PRIMARY_KEY, empty, {"version": Increment(1)}
        )
        values = values_for(current)
        if values is None:
            self._backend.delete(SESSION_TOTALS, Cond("id", "eq", user_id))
        else:
            self._backend.update(SESSION_TOTALS, Cond("id", "eq", user_id), dict(values))

    def add_ended(self, session: Mapping[str, Any]) -> None:
        """Merge a session that just ended into its owner's row."""

        def merged(base: Mapping[str, Any]) -> Mapping[str, Any]:
            return {
                "ended_sessions": base["ended_sessions"] + 1,
                **{name: base[name] + session[name] for name in _SUMS},
                "first_started_at": _earliest(base["first_started_at"], session["started_at"]),
                "last_started_at": _latest(base["last_started_at"], session["started_at"]),
            }

        self._write(session["user_id"], merged)

    def recount(self, user_ids: Iterable[str]) -> None:
        """Recount each user's row from their ended sessions."""
        for user_id in sorted(set(user_ids)):

            def counted(
                current: Mapping[str, Any], user_id: str = user_id
            ) -> Mapping[str, Any] | None:
                # Read after the lock: the count sees every write that held it before.
                where = And((Cond("user_id", "eq", user_id), Cond("ended_at", "isnull", False)))
                (ended,) = self._backend.aggregate(_SESSIONS, where, (), _AGGREGATES)
                if not ended["sessions"]:
                    return None
                return {
                    "ended_sessions": ended["sessions"],
                    **{name: ended[name] for name in _SUMS},
                    "first_started_at": ended["first_started_at"],
                    "last_started_at": ended["last_started_at"],
                }

            self._write(user_id, counted)

    def forget(self, where: Expr) -> None:
        """Remove the rows of the users ``where`` names (by ``user_id``): their
        sessions are gone."""
        self._backend.delete(SESSION_TOTALS, where)
