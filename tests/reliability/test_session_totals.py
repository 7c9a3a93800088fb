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

