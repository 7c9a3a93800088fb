"""Conversation sessions (a state machine with turn accounting) and their turns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Unpack, cast

import attrs

from clonestore.errors import ForeignKeyViolation, InvalidTransition, NotFound, ValidationError
from clonestore.fields import SessionChanges, SessionCreate, TurnChanges, TurnCreate
from clonestore.query import Cond, Expr, conjoin
from clonestore.records import Session, Turn
from clonestore.repositories._totals import SessionTotals
from clonestore.repositories.base import check_rows
from clonestore.repositories.owned import OwnedRepository
from clonestore.schema import INT64_MAX, MONEY_LIMIT
from clonestore.spi import Aggregate, Increment

__all__ = [
    "SESSION_TRANSITIONS",
    "SessionRepository",
    "SessionStatistics",
    "SessionWithTurns",
    "TurnRepository",
]

#: The session state machine: state -> states it may move to.
SESSION_TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "idle": frozenset({"listening", "error"}),
    "listening": frozenset({"processing", "idle", "interrupted", "error"}),
    "processing": frozenset({"speaking", "interrupted", "error"}),
    "speaking": frozenset({"listening", "idle", "interrupted", "error"}),
    "interrupted": frozenset({"listening", "idle", "error"}),
    "error": frozenset({"idle"}),
}

#: What a new turn takes from its session once its totals are counted: turn column ->
#: session column.
_TURN_FROM_SESSION: Final[Mapping[str, str]] = {
    "user_id": "user_id",
    "turn_index": "last_turn_index",
}

#: How often ``hard_delete`` starts over when a turn was added to the session meanwhile.
_DELETE_ATTEMPTS: Final = 5

#: How often a state move is retried when another writer changed the state first.
_CAS_ATTEMPTS: Final = 10


@attrs.frozen
class SessionWithTurns:
    """A session and its turns in order."""

    session: Session
    turns: list[Turn]


@attrs.frozen(kw_only=True)
class SessionStatistics:
    """Totals over a user's sessions (``sessions.user_statistics``)."""

    total_sessions: int
    active_sessions: int
    total_turns: int
    total_cost: Decimal
    total_latency_ms: int
    first_started_at: datetime | None
    last_started_at: datetime | None

    @property
    def average_latency_ms(self) -> float | None:
        """Mean latency over every turn of the user's sessions."""
        return self.total_latency_ms / self.total_turns if self.total_turns else None


class SessionRepository(OwnedRepository[Session]):
    """Sessions of a user talking to their clone."""

    noun = "session"
    initial_values = {"state": ("idle", "move it with update_state()")}

    if TYPE_CHECKING:  # the keywords each takes (clonestore.fields); the base class runs them

        def create(self, **fields: Unpack[SessionCreate]) -> Session: ...  # type: ignore[override]

        def update(  # type: ignore[override]
            self,
            id: str,
            /,
            expected_version: int | None = None,
            **changes: Unpack[SessionChanges],
        ) -> Session: ...

    def _check_references(self, rows: Any) -> None:
        super()._check_references(rows)
        for row in rows:
            for field, repo_name in (
                ("voice_model_id", "voice_models"),
                ("face_model_id", "face_models"),
            ):
                if row.get(field) is None:
                    continue
                model = self.repos[repo_name]._live_row(row[field])
                if model["user_id"] != row["user_id"]:
                    raise NotFound(f"no {repo_name[:-1]} with id {row[field]} for this user")

    # ------------------------------------------------------------------ ended-session totals
    # Every write that can change an ended session recounts its owner's row of
    # session_totals in the same transaction (see repositories._totals); ``end``
    # merges the session into it. ``update_state`` and ``add_turn`` touch open
    # sessions only, which user_statistics reads live.

    @property
    def _totals(self) -> SessionTotals:
        return SessionTotals(self._gateway)

    def _insert(self, verb: str, row: Any) -> None:
        super()._insert(verb, row)
        if row.get("ended_at") is not None:
            self._totals.recount([row["user_id"]])

    def _update(
        self, verb: str, where: Expr, changes: Any, key: str | None = None
    ) -> list[Any]:
        rows = super()._update(verb, where, changes, key)
        if rows and verb not in ("update_state", "end"):
            self._totals.recount(row["user_id"] for row in rows)
        return rows

    def _delete(self, verb: str, where: Expr, key: str | None = None) -> int:
        removed = super()._delete(verb, where, key)
        if verb == "erase_user":  # where names the user: their row goes too
            self._totals.forget(where)
        return removed

    if not TYPE_CHECKING:  # typed above (clonestore.fields)

        def create(self, **fields: Any) -> Session:
            with self._unit.atomic():
                return super().create(**fields)

        def update(
            self, id: str, /, expected_version: int | None = None, **changes: Any
        ) -> Session:
            with self._unit.atomic():
                return super().update(id, expected_version, **changes)

    def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[Session]:
        with self._unit.atomic():
            created = super().create_many(rows)
            self._totals.recount(r.user_id for r in created if r.ended_at is not None)
        return created

    def upsert(self, id: str, /, **fields: Any) -> tuple[Session, bool]:
        with self._unit.atomic():
            session, created = super().upsert(id, **fields)
            self._totals.recount([session.user_id])
        return session, created

    def update_many(
        self, where: Mapping[str, Any] | None, /, *, all: bool = False, **changes: Any
    ) -> int:
        with self._unit.atomic():
            return super().update_many(where, all=all, **changes)

    def update_state(self, id: str, state: str) -> Session:
        """Move the session to ``state``; :class:`InvalidTransition` if the machine forbids it."""
        id = self._check_id(id)
        state = _check_state(state)
        for _ in range(_CAS_ATTEMPTS):
            row = self._live_row(id)
            if row["ended_at"] is not None:
                raise InvalidTransition(f"session {id} has ended")
            current = row["state"]
            if state not in SESSION_TRANSITIONS[current]:
                allowed = ", ".join(sorted(SESSION_TRANSITIONS[current]))
                raise InvalidTransition(
                    f"session {id} cannot move from {current} to {state} (allowed: {allowed})"
                )
            where = conjoin(
                self._by_id(id, owner=row["user_id"]),
                Cond("state", "eq", current),
                Cond("ended_at", "isnull", True),
            )
            rows = self._update("update_state", where, self._stamp({"state": state}), key=id)
            if rows:
                return self._load(rows[0])
        raise InvalidTransition(f"session {id} kept changing state; try again")

    def add_turn(self, session_id: str, **fields: Any) -> Turn:
        """Record a turn and update the session's totals in one transaction.

        ``total_turns`` grows by one, ``total_latency_ms`` by the turn's latency
        (the sum of its four stages) and ``total_cost`` by its exact cost. A turn
        is never older than its session: a ``created_at`` (given on import) before
        the session's is a :class:`ValidationError` naming ``created_at``.
        """
        session_id = self._check_id(session_id)
        turns = self.repos["turns"]
        probe = turns._build({"session_id": session_id, **fields}, user_id=session_id, turn_index=1)
        changes = self._stamp(
            {
                "total_turns": Increment(1),
                "last_turn_index": Increment(1),
                "total_latency_ms": Increment(probe.latency_ms),
                "total_cost": Increment(probe.cost),
            }
        )
        if probe.latency_ms > INT64_MAX:
            raise ValidationError(f"the four stages add up to more than {INT64_MAX} ms",
                                  field="latency_ms")
        if probe.cost >= MONEY_LIMIT:
            raise ValidationError(f"the three stage costs add up to {MONEY_LIMIT} or more",
                                  field="cost")
        # The session's totals must stay storable (a signed 64-bit latency, a money
        # value): a turn that would carry them past is refused, and the condition is
        # part of the one atomic step, so no race slips past it.
        # A turn is never older than its session, so a session's turns are read with
        # created_at >= the session's (a time-partitioned store skips older months).
        where = conjoin(
            self._by_id(session_id),
            Cond("ended_at", "isnull", True),
            Cond("created_at", "lte", probe.created_at),
            Cond("total_latency_ms", "lte", INT64_MAX - probe.latency_ms),
            Cond("total_cost", "lt", MONEY_LIMIT - probe.cost),
        )
        # The probe is valid; the two values the session gives are valid ids and counts, so
        # the turn is the probe's row with them, loaded without checking 37 fields again.
        # One step: the session's totals change and the turn is inserted, or neither.
        row = self._gateway.update_and_insert(
            self.spec,
            where,
            changes,
            turns.spec,
            turns._row(probe),
            _TURN_FROM_SESSION,
            action=f"{self.noun}.add_turn",
            insert_action=f"{turns.noun}.add_turn",
            key=session_id,
            explain_conflict=turns._unique_error,
        )
        if row is None:
            session = self._live_row(session_id)
            if session["ended_at"] is not None:
                raise InvalidTransition(f"session {session_id} has ended; no more turns")
            if session["created_at"] > probe.created_at:
                raise ValidationError(
                    f"may not be earlier than its session's created_at "
                    f"({session['created_at'].isoformat()})",
                    field="created_at",
                )
            raise ValidationError(
                f"the session's totals would pass what is stored (latency up to {INT64_MAX} "
                f"ms, cost below {MONEY_LIMIT}): start a new session",
                field="total_latency_ms"
                if session["total_latency_ms"] > INT64_MAX - probe.latency_ms
                else "total_cost",
            )
        turn: Turn = turns._load(row)
        return turn

    def end(self, id: str) -> Session:
        """End the session (``ended_at`` set); ending twice is an :class:`InvalidTransition`."""
        id = self._check_id(id)
        where = conjoin(self._by_id(id), Cond("ended_at", "isnull", True))
        with self._unit.atomic():
            rows = self._update("end", where, self._stamp({"ended_at": self._clock()}), key=id)
            if rows:
                self._totals.add_ended(rows[0])
        if not rows:
            self._live_row(id)
            raise InvalidTransition(f"session {id} has already ended")
        return self._load(rows[0])

    def get_with_turns(self, id: str) -> SessionWithTurns:
        """The session and its turns in order."""
        session = self.get(id)
        # Turns are never older than their session: the bound lets a time-partitioned
        # store read only the months since the session began.
        turns = self.repos["turns"].find_many(
            where={"session_id": session.id, "created_at__gte": session.created_at},
            order_by="turn_index",
        )
        return SessionWithTurns(session, turns)

    def user_statistics(self, user_id: str, since: datetime | None = None) -> SessionStatistics:
        """Totals over the user's sessions (started at or after ``since``).

        Without ``since``, one row of ``session_totals`` (the ended sessions) plus
        the user's open sessions: its cost does not grow with the user's history.
        With ``since``, summed over the sessions started since then.
        """
        user_id = self._check_owner(user_id)
        if since is not None:
            return self._computed_statistics(user_id, since)
        return SessionStatistics(**self._totals.read(user_id, "session.user_statistics"))

    def _computed_statistics(
        self, user_id: str, since: datetime | None = None
    ) -> SessionStatistics:
        """The statistics summed over the sessions themselves (the reference)."""
        where: dict[str, Any] = {"user_id": user_id}
        if since is not None:
            where["started_at__gte"] = since
        expr = self._where(where)
        aggregates = {
            "total_sessions": Aggregate("count"),
            "ended_sessions": Aggregate("count", "ended_at"),
            "total_turns": Aggregate("sum", "total_turns"),
            "total_cost": Aggregate("sum", "total_cost"),
            "total_latency_ms": Aggregate("sum", "total_latency_ms"),
            "first_started_at": Aggregate("min", "started_at"),
            "last_started_at": Aggregate("max", "started_at"),
        }
        (row,) = self._gateway.aggregate(
            self.spec, expr, (), aggregates, action="session.user_statistics"
        )
        return SessionStatistics(
            total_sessions=row["total_sessions"],
            active_sessions=row["total_sessions"] - row["ended_sessions"],
            total_turns=row["total_turns"] or 0,
            total_cost=row["total_cost"] if row["total_cost"] is not None else Decimal(0),
            total_latency_ms=row["total_latency_ms"] or 0,
            first_started_at=row["first_started_at"],
            last_started_at=row["last_started_at"],
        )

    def hard_delete(self, id: str) -> None:
        """Remove the session and its turns for good; its memories stay, with
        ``session_id`` set to None (the original schema's ``onDelete: SetNull``).

        ``delete`` does the same: sessions have no soft delete.
        """
        id = self._check_id(id)
        with self._unit.atomic():
            row = self._live_row(id)  # NotFound (another user's, in a user's view): no write
            for attempt in range(_DELETE_ATTEMPTS):
                # What points at the session first (turns, memories' links), then the
                # session: no foreign key is broken on the way, and hooks see each row.
                self.repos["turns"]._delete("hard_delete", Cond("session_id", "eq", id))
                memories = self.repos["memories"]
                memories._update(
                    "session_deleted",
                    Cond("session_id", "eq", id),
                    memories._stamp({"session_id": None}),
                )
                try:
                    with self._unit.transaction():  # a savepoint: a refused delete undoes itself
                        super().hard_delete(id)
                    break
                except ForeignKeyViolation:
                    # A turn was added meanwhile (add_turn had found the session before
                    # this began): the engine refused to orphan it; remove it, try again.
                    if attempt == _DELETE_ATTEMPTS - 1:
                        raise
            if row["ended_at"] is not None:
                self._totals.recount([row["user_id"]])


def _check_state(state: Any) -> str:
    if not isinstance(state, str) or state not in SESSION_TRANSITIONS:
        raise ValidationError(
            f"must be one of {', '.join(SESSION_TRANSITIONS)}; got {state!r}", field="state"
        )
    return str(state)


class TurnRepository(OwnedRepository[Turn]):
    """Turns of sessions. Create them with ``sessions.add_turn`` (or ``turns.create``,
    which does the same), so session totals stay exact."""

    noun = "turn"

    if TYPE_CHECKING:  # the keywords each takes (clonestore.fields); the base class runs them

        def update(  # type: ignore[override]
            self,
            id: str,
            /,
            expected_version: int | None = None,
            **changes: Unpack[TurnChanges],
        ) -> Turn: ...

    def create(self, **typed: Unpack[TurnCreate]) -> Turn:  # type: ignore[override]
        """Same as ``sessions.add_turn(session_id, **fields)``."""
        fields: dict[str, Any] = dict(typed)
        if "session_id" not in fields:
            raise ValidationError("is required", field="session_id")
        session_id = fields.pop("session_id")
        sessions = cast(SessionRepository, self.repos["sessions"])
        return sessions.add_turn(session_id, **fields)

    def upsert(self, id: str, /, **fields: Any) -> tuple[Turn, bool]:
        """Not offered: a turn counts in its session's totals, so turns are added with
        ``sessions.add_turn`` (which takes an ``id``); :class:`ValidationError`."""
        raise ValidationError(
            "turns are added with sessions.add_turn(session_id, id=...), which keeps the "
            "session's totals; they have no upsert"
        )

    def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[Turn]:
        """Add each turn to its session, all or none."""
        checked = check_rows(rows)
        with self._unit.atomic():
            return [self.create(**dict(row)) for row in checked]

    def _adjust_session(self, row: Mapping[str, Any]) -> None:
        turn = self._load(row)
        sessions = self.repos["sessions"]
        changes = sessions._stamp(
            {
                "total_turns": Increment(-1),
                "total_latency_ms": Increment(-turn.latency_ms),
                "total_cost": Increment(-turn.cost),
            }
        )
        sessions._update(
            "remove_turn",
            sessions._by_id(turn.session_id, owner=turn.user_id),
            changes,
            key=turn.session_id,
        )

    def hard_delete(self, id: str) -> None:
        """Remove a turn and take it out of its session's totals."""
        id = self._check_id(id)
        with self._unit.atomic():
            row = self._get_row(id)
            # Delete first: of two concurrent deletes only one removes the row, and only
            # that one may take the turn out of the session's totals.
            if row is None or not self._delete(
                "hard_delete", self._by_id(id, live=False, owner=row["user_id"]), key=id
            ):
                raise NotFound(f"no turn with id {id}")
            self._adjust_session(row)
