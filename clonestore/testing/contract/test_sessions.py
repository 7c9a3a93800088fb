"""Contract: sessions (the documented state machine, turn accounting, end,
get_with_turns, user_statistics) and turns."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest

import clonestore
from clonestore import InvalidTransition, NotFound, Session, Store, User, ValidationError
from clonestore.testing import FrozenClock, StoreFactory
from clonestore.testing.contract._builders import (
    missing_id,
    new_face_model,
    new_session,
    new_user,
    new_voice_model,
    refused,
)

#: The state machine as documented (README, "The session state machine").
MOVES = {
    "idle": {"listening", "error"},
    "listening": {"processing", "idle", "interrupted", "error"},
    "processing": {"speaking", "interrupted", "error"},
    "speaking": {"listening", "idle", "interrupted", "error"},
    "interrupted": {"listening", "idle", "error"},
    "error": {"idle"},
}
#: A way to reach each state from a new (idle) session.
PATHS = {
    "idle": [],
    "listening": ["listening"],
    "processing": ["listening", "processing"],
    "speaking": ["listening", "processing", "speaking"],
    "interrupted": ["listening", "interrupted"],
    "error": ["error"],
}


def _session_in(store: Store, user: User, state: str) -> Session:
    session = new_session(store, user)
    for step in PATHS[state]:
        session = store.sessions.update_state(session.id, step)
    assert session.state == state
    return session


def test_new_session_defaults(store_factory: StoreFactory) -> None:
    """A new session is idle, started now, not ended, with zero totals."""
    clock = FrozenClock()
    store = store_factory(clock=clock)
    session = new_session(store, new_user(store))
    assert session.state == "idle"
    assert session.started_at == clock.now
    assert session.ended_at is None
    assert (session.total_turns, session.total_latency_ms) == (0, 0)
    assert session.total_cost == Decimal(0)
    assert session.average_latency_ms is None
    assert store.sessions.get(session.id) == session


def test_session_may_reference_the_users_models(store: Store) -> None:
    """A session may name the user's own voice and face models."""
    user = new_user(store)
    voice = new_voice_model(store, user)
    face = new_face_model(store, user)
    session = new_session(store, user, voice_model_id=voice.id, face_model_id=face.id)
    assert store.sessions.get(session.id).voice_model_id == voice.id


def test_session_refuses_missing_or_foreign_models(store: Store) -> None:
    """A session naming a missing model, or another user's, raises NotFound."""
    user = new_user(store)
    other = new_user(store)
    foreign = new_voice_model(store, other)
    refused(store, lambda: new_session(store, user, voice_model_id=foreign.id), NotFound)
    refused(store, lambda: new_session(store, user, face_model_id=missing_id()), NotFound)
    refused(store, lambda: store.sessions.create(user_id=missing_id()), NotFound)


def test_every_documented_move_is_allowed(store: Store) -> None:
    """Each move in the documented state machine succeeds and bumps the version."""
    user = new_user(store)
    for source, targets in MOVES.items():
        for target in sorted(targets):
            session = _session_in(store, user, source)
            moved = store.sessions.update_state(session.id, target)
            assert moved.state == target
            assert moved.version == session.version + 1
            assert store.sessions.get(session.id) == moved


def test_every_other_move_raises_invalid_transition(store: Store) -> None:
    """Every move outside the state machine raises InvalidTransition and changes nothing."""
    user = new_user(store)
    for source, targets in MOVES.items():
        session = _session_in(store, user, source)
        for target in sorted(set(MOVES) - targets):
            refused(
                store,
                partial(store.sessions.update_state, session.id, target),
                InvalidTransition,
                what=f"{source} -> {target}",
            )


def test_update_state_validates_its_arguments(store: Store) -> None:
    """update_state() refuses unknown states (ValidationError) and missing sessions (NotFound)."""
    session = new_session(store, new_user(store))
    refused(store, lambda: store.sessions.update_state(session.id, "sleeping"))
    refused(store, lambda: store.sessions.update_state(session.id, None))  # type: ignore[arg-type]
    refused(store, lambda: store.sessions.update_state(missing_id(), "listening"), NotFound)


def test_add_turn_accounts_latency_cost_and_index(store: Store) -> None:
    """add_turn() numbers turns 1..n; session totals are the sums, the average the mean."""
    user = new_user(store)
    session = new_session(store, user)
    stages = [
        (100, 20, 300, 80, "0.001", "0.002500", "0.000001"),
        (50, 0, 0, 0, "0", "0", "0"),
        (7, 11, 13, 17, "1.5", "0.25", "0.125"),
    ]
    turns = []
    for asr, rag, llm, tts, asr_c, llm_c, tts_c in stages:
        turns.append(
            store.sessions.add_turn(
                session.id,
                user_transcript="hi",
                llm_response="hello",
                asr_latency_ms=asr,
                rag_latency_ms=rag,
                llm_latency_ms=llm,
                tts_latency_ms=tts,
                asr_cost=Decimal(asr_c),
                llm_cost=Decimal(llm_c),
                tts_cost=Decimal(tts_c),
            )
        )
    assert [t.turn_index for t in turns] == [1, 2, 3]
    assert [t.latency_ms for t in turns] == [500, 50, 48]
    assert [t.cost for t in turns] == [Decimal("0.003501"), Decimal(0), Decimal("1.875")]
    assert all(t.user_id == user.id and t.session_id == session.id for t in turns)
    stored = store.sessions.get(session.id)
    assert stored.total_turns == 3
    assert stored.total_latency_ms == 598
    assert stored.total_cost == Decimal("1.878501")
    assert str(stored.total_cost) == str(Decimal("1.878501").quantize(Decimal("0.000001")))
    assert stored.average_latency_ms == pytest.approx(598 / 3)
    assert stored.version == session.version + 3
    for turn in turns:
        assert store.turns.get(turn.id) == turn


def test_turns_create_is_add_turn(store: Store) -> None:
    """turns.create(session_id=...) records a turn and updates its session like add_turn."""
    session = new_session(store, new_user(store))
    turn = store.turns.create(session_id=session.id, llm_latency_ms=40, llm_cost=Decimal("0.5"))
    assert turn.turn_index == 1
    stored = store.sessions.get(session.id)
    assert (stored.total_turns, stored.total_latency_ms, stored.total_cost) == (
        1,
        40,
        Decimal("0.5"),
    )


def test_turns_create_many_is_all_or_none(store: Store) -> None:
    """turns.create_many() adds every turn, or none when one is invalid."""
    session = new_session(store, new_user(store))
    added = store.turns.create_many(
        [{"session_id": session.id, "asr_latency_ms": 1}, {"session_id": session.id}]
    )
    assert [t.turn_index for t in added] == [1, 2]
    refused(
        store,
        lambda: store.turns.create_many(
            [{"session_id": session.id}, {"session_id": session.id, "asr_latency_ms": -1}]
        ),
    )
    refused(
        store,
        lambda: store.turns.create_many([{"session_id": session.id}, {"session_id": missing_id()}]),
        NotFound,
    )
    assert store.sessions.get(session.id).total_turns == 2


def test_add_turn_refuses_bad_turns(store: Store) -> None:
    """add_turn() with negative latency or cost, or a missing session, writes nothing."""
    session = new_session(store, new_user(store))
    refused(store, lambda: store.sessions.add_turn(session.id, rag_latency_ms=-1))
    refused(store, lambda: store.sessions.add_turn(session.id, tts_cost=Decimal("-0.01")))
    refused(store, lambda: store.sessions.add_turn(missing_id()), NotFound)


def test_a_turn_is_never_older_than_its_session(store: Store) -> None:
    """add_turn(created_at=) before the session's is refused first; at or after it, kept."""
    session = new_session(store, new_user(store))
    error = refused(
        store,
        lambda: store.sessions.add_turn(
            session.id, created_at=session.created_at - timedelta(microseconds=1)
        ),
    )
    assert error.field == "created_at"
    assert store.sessions.get(session.id).total_turns == 0
    same = store.sessions.add_turn(session.id, created_at=session.created_at)
    later = store.sessions.add_turn(session.id, created_at=session.created_at + timedelta(days=40))
    assert store.sessions.get_with_turns(session.id).turns == [same, later]


def test_add_turn_keeps_the_session_totals_storable(store: Store) -> None:
    """A turn pushing a session total past what is storable is a ValidationError naming it."""
    # Stage sums past 64 bits, latency total past 2**63 - 1 ms, cost total to 10**12; before any
    # write, on every backend; turns up to the edge are kept exactly.
    int64_max = 2**63 - 1
    session = new_session(store, new_user(store))
    refused(store, lambda: store.sessions.add_turn(session.id, asr_latency_ms=2**62,
                                                   llm_latency_ms=2**62), what="one turn")
    store.sessions.add_turn(session.id, asr_latency_ms=int64_max - 5)
    error = refused(store, lambda: store.sessions.add_turn(session.id, tts_latency_ms=6),
                    what="latency total")
    assert error.field == "total_latency_ms"
    store.sessions.add_turn(session.id, tts_latency_ms=5)
    assert store.sessions.get(session.id).total_latency_ms == int64_max
    costly = new_session(store, new_user(store))
    store.sessions.add_turn(costly.id, llm_cost=Decimal("999999999999.999999"))
    error = refused(store, lambda: store.sessions.add_turn(costly.id, asr_cost=Decimal("0.000001")),
                    what="cost total")
    assert error.field == "total_cost"
    store.sessions.add_turn(costly.id)
    kept = store.sessions.get(costly.id)
    assert (kept.total_turns, kept.total_cost) == (2, Decimal("999999999999.999999"))


def test_deleting_a_turn_takes_it_out_of_the_totals(store: Store) -> None:
    """Deleting a turn subtracts it from its session's totals; indexes are not reused."""
    session = new_session(store, new_user(store))
    first = store.sessions.add_turn(session.id, asr_latency_ms=10, asr_cost=Decimal("0.1"))
    store.sessions.add_turn(session.id, asr_latency_ms=30, asr_cost=Decimal("0.3"))
    store.turns.delete(first.id)
    stored = store.sessions.get(session.id)
    assert (stored.total_turns, stored.total_latency_ms) == (1, 30)
    assert stored.total_cost == Decimal("0.3")
    assert stored.average_latency_ms == 30
    third = store.sessions.add_turn(session.id)
    assert third.turn_index == 3
    with pytest.raises(NotFound):
        store.turns.get(first.id)
    with pytest.raises(ValidationError):
        store.turns.restore(first.id)


def test_end_session(store_factory: StoreFactory) -> None:
    """end() sets ended_at once; an ended session refuses ending, moves and turns."""
    clock = FrozenClock()
    store = store_factory(clock=clock)
    session = new_session(store, new_user(store))
    store.sessions.update_state(session.id, "listening")
    clock.advance(90)
    ended = store.sessions.end(session.id)
    assert ended.ended_at == clock.now
    assert ended.ended_at - ended.started_at == timedelta(seconds=90)
    refused(store, lambda: store.sessions.end(session.id), InvalidTransition)
    for state in MOVES:
        refused(
            store,
            partial(store.sessions.update_state, session.id, state),
            InvalidTransition,
            what=state,
        )
    refused(store, lambda: store.sessions.add_turn(session.id), InvalidTransition)
    refused(store, lambda: store.sessions.end(missing_id()), NotFound)


def test_get_with_turns(store: Store) -> None:
    """get_with_turns() returns the session and its turns in index order."""
    user = new_user(store)
    session = new_session(store, user)
    other = new_session(store, user)
    turns = [store.sessions.add_turn(session.id, user_transcript=str(i)) for i in range(4)]
    store.sessions.add_turn(other.id)
    result = store.sessions.get_with_turns(session.id)
    assert result.session == store.sessions.get(session.id)
    assert result.turns == turns
    empty = store.sessions.get_with_turns(new_session(store, user).id)
    assert empty.turns == []
    with pytest.raises(NotFound):
        store.sessions.get_with_turns(missing_id())


def test_user_statistics(store_factory: StoreFactory) -> None:
    """user_statistics() totals the user's sessions exactly, counting active ones."""
    clock = FrozenClock()
    store = store_factory(clock=clock)
    user = new_user(store)
    other = new_user(store)
    first = new_session(store, user)
    store.sessions.add_turn(first.id, llm_latency_ms=100, llm_cost=Decimal("0.000001"))
    store.sessions.add_turn(first.id, llm_latency_ms=300, llm_cost=Decimal("0.1"))
    store.sessions.end(first.id)
    clock.advance(3600)
    second = new_session(store, user)
    store.sessions.add_turn(second.id, asr_latency_ms=200, asr_cost=Decimal("0.2"))
    noise = new_session(store, other)
    store.sessions.add_turn(noise.id, asr_latency_ms=9999, asr_cost=Decimal(5))
    stats = store.sessions.user_statistics(user.id)
    assert stats.total_sessions == 2
    assert stats.active_sessions == 1
    assert stats.total_turns == 3
    assert stats.total_latency_ms == 600
    assert stats.total_cost == Decimal("0.300001")
    assert stats.average_latency_ms == pytest.approx(200.0)
    assert stats.first_started_at == first.started_at
    assert stats.last_started_at == second.started_at
    recent = store.sessions.user_statistics(user.id, since=second.started_at)
    assert (recent.total_sessions, recent.total_turns) == (1, 1)


def test_user_statistics_of_a_user_without_sessions(store: Store) -> None:
    """user_statistics() of a user with no sessions is all zeros and Nones."""
    stats = store.sessions.user_statistics(new_user(store).id)
    assert (stats.total_sessions, stats.active_sessions, stats.total_turns) == (0, 0, 0)
    assert stats.total_cost == Decimal(0)
    assert stats.total_latency_ms == 0
    assert stats.average_latency_ms is None
    assert stats.first_started_at is None
    assert stats.last_started_at is None


def test_session_delete_removes_it_and_its_turns(store: Store) -> None:
    """Sessions have no soft delete: delete() removes the session and its turns."""
    session = new_session(store, new_user(store))
    turn = store.sessions.add_turn(session.id)
    store.sessions.delete(session.id)
    assert store.sessions.get_or_none(session.id) is None
    assert store.sessions.count(with_deleted=True) == 0
    assert store.turns.get_or_none(turn.id) is None
    with pytest.raises(ValidationError):
        store.sessions.restore(session.id)
    with pytest.raises(NotFound):
        store.sessions.delete(session.id)


def test_session_metadata_is_updatable(store: Store) -> None:
    """update() changes a session's metadata and nothing the state machine owns."""
    session = new_session(store, new_user(store), metadata={"lang": "en"})
    updated = store.sessions.update(session.id, metadata={"lang": "fr", "n": 1})
    assert updated.metadata == {"lang": "fr", "n": 1}
    assert updated.state == "idle"


def test_turn_deleted_twice_at_once_is_subtracted_once(store_factory: StoreFactory) -> None:
    """Two concurrent deletes of one turn take it out of the session's totals once."""
    race: dict[str, Any] = {"armed": False, "errors": []}

    def rival_delete(store: Store, turn_id: str) -> None:
        try:
            store.turns.delete(turn_id)
        except NotFound as exc:
            race["errors"].append(exc)

    class Race:
        @clonestore.hookimpl
        def clonestore_before_write(self, store: Store, op: clonestore.Operation) -> None:
            if op.action == "turn.hard_delete" and race["armed"]:
                race["armed"] = False
                rival = threading.Thread(target=rival_delete, args=(store, race["turn"]))
                race["rival"] = rival
                rival.start()
                # Let the rival finish first where the backend allows it; memory://
                # serialises transactions, so there it runs after this one.
                rival.join(timeout=0.5)

    store = store_factory(plugins=[Race()])
    session = new_session(store, new_user(store))
    doomed = store.sessions.add_turn(session.id, asr_latency_ms=10, asr_cost=Decimal("0.1"))
    store.sessions.add_turn(session.id, asr_latency_ms=30, asr_cost=Decimal("0.3"))
    race.update(armed=True, turn=doomed.id)
    try:
        store.turns.delete(doomed.id)
    except NotFound as exc:
        race["errors"].append(exc)
    race["rival"].join(timeout=30)
    assert len(race["errors"]) == 1
    stored = store.sessions.get(session.id)
    assert (stored.total_turns, stored.total_latency_ms, stored.total_cost) == (
        1,
        30,
        Decimal("0.3"),
    )


def test_turn_added_while_session_is_deleted_leaves_no_orphan(store_factory: StoreFactory) -> None:
    """A turn added while its session is being deleted is deleted with it, or refused."""
    race: dict[str, Any] = {"armed": False, "errors": []}

    def rival_add_turn(store: Store, session_id: str) -> None:
        try:
            store.sessions.add_turn(session_id)
        except NotFound as exc:
            race["errors"].append(exc)

    class Race:
        @clonestore.hookimpl
        def clonestore_before_write(self, store: Store, op: clonestore.Operation) -> None:
            if op.action == "session.hard_delete" and race["armed"]:
                race["armed"] = False
                rival = threading.Thread(target=rival_add_turn, args=(store, race["session"]))
                race["rival"] = rival
                rival.start()
                rival.join(timeout=0.5)  # memory:// runs the rival after this transaction

    store = store_factory(plugins=[Race()])
    session = new_session(store, new_user(store))
    store.sessions.add_turn(session.id)
    race.update(armed=True, session=session.id)
    store.sessions.delete(session.id)
    race["rival"].join(timeout=30)
    assert store.sessions.get_or_none(session.id) is None
    assert store.turns.find_many(where={"session_id": session.id}) == []
    assert store.turns.count() == 0
