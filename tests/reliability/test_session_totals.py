"""Kept session totals under concurrent writers of one user's sessions."""

from __future__ import annotations

from decimal import Decimal

from clonestore.testing.contract._builders import race


def test_concurrent_ends_and_deletes_keep_exact_totals(store_factory, clonestore_url):
    """Threads ending, and hard-deleting ended, sessions of one user at once leave
    user_statistics equal to the sum over the sessions (no merge or recount lost)."""
    store = store_factory()
    user = store.users.create(email="busy@example.com", name="Busy")
    sessions = []
    for k in range(24):
        session = store.sessions.create(user_id=user.id)
        store.sessions.add_turn(session.id, llm_latency_ms=k, llm_cost=Decimal("0.01"))
        sessions.append(session.id)
    doomed = sessions[:6]
    for session_id in doomed:
        store.sessions.end(session_id)
    rest = sessions[6:]
    parts = [(rest[0::3], False), (rest[1::3], False), (rest[2::3], False), (doomed, True)]

    def work(index: int) -> None:
        part, delete = parts[index]
        for session_id in part:
            if delete:
                store.sessions.hard_delete(session_id)
            else:
                store.sessions.end(session_id)

    errors = race(len(parts), work, timeout=60)
    assert errors == []
    kept = store.sessions.user_statistics(user.id)
    assert kept == store.sessions._computed_statistics(user.id)
    assert kept.total_sessions == 18
    assert kept.active_sessions == 0


def test_first_ends_of_a_user_race_for_the_new_row(store_factory, clonestore_url):
    """Writers ending a user's first sessions at once all find no totals row and insert
    it; the losers of that insert count again from the winner's row (none is lost)."""
    store = store_factory()
    for round_ in range(12):
        user = store.users.create(email=f"first{round_}@example.com", name="First")
        sessions = [store.sessions.create(user_id=user.id).id for _ in range(6)]
        errors = race(len(sessions), _ender(store, sessions), timeout=60)
        assert errors == []
        kept = store.sessions.user_statistics(user.id)
        assert kept == store.sessions._computed_statistics(user.id)
        assert kept.total_sessions == 6


def _ender(store, sessions):
    """race's work: the thread ``index`` ends ``sessions[index]``."""
    return lambda index: store.sessions.end(sessions[index])
