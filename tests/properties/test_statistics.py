"""``sessions.user_statistics`` (kept totals) equals the statistics summed over the
sessions, after random session and turn writes, on memory, SQLite, PostgreSQL and
MariaDB at once, and every backend holds the same totals rows as the oracle."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

import clonestore
from clonestore.testing.differential import Stores

_SLOT = st.integers(min_value=0, max_value=7)
_OPS = st.one_of(
    st.tuples(st.just("user")),
    st.tuples(st.just("session"), _SLOT, st.integers(-10_000, 10_000)),
    st.tuples(
        st.just("turn"),
        _SLOT,
        st.integers(0, 5_000),
        st.decimals(min_value=0, max_value=100, places=6, allow_nan=False),
    ),
    st.tuples(st.just("end"), _SLOT),
    st.tuples(st.just("delete_session"), _SLOT),
    st.tuples(st.just("delete_turn"), _SLOT),
    st.tuples(st.just("erase"), _SLOT),
    st.tuples(st.just("upsert"), _SLOT, st.integers(-10_000, 10_000)),
    st.tuples(st.just("create_many"), _SLOT, st.integers(0, 3)),
    st.tuples(st.just("rolled_back_end"), _SLOT),
)


class _Rollback(Exception):
    pass


def _pick(items: list[str], slot: int) -> str | None:
    return items[slot % len(items)] if items else None


def _apply(stores: Stores, op: tuple[Any, ...], state: dict[str, list[str]]) -> None:
    """Apply ``op`` to every store (same result or same error class everywhere)."""
    kind = op[0]
    users, sessions, turns = state["users"], state["sessions"], state["turns"]
    start = stores.clock()
    if kind == "user":
        n = len(users)
        user = stores.apply(lambda s: s.users.create(email=f"u{n}@example.com", name="U"))
        users.append(user.id)
    elif kind in ("session", "upsert", "create_many"):
        user_id = _pick(users, op[1])
        if user_id is None:
            return
        if kind == "session":
            at = start + timedelta(seconds=op[2])
            made = stores.apply(lambda s: s.sessions.create(user_id=user_id, started_at=at))
            if made is not None:
                sessions.append(made.id)
        elif kind == "upsert":
            target = _pick(sessions, op[1]) or f"s-{len(sessions)}"
            at = start + timedelta(seconds=op[2])
            made = stores.apply(
                lambda s: s.sessions.upsert(target, user_id=user_id, started_at=at)
            )
            if made is not None and made[1]:
                sessions.append(made[0].id)
        else:
            rows = [{"user_id": user_id, "started_at": start} for _ in range(op[2])]
            made = stores.apply(lambda s: s.sessions.create_many(rows))
            sessions.extend(m.id for m in made or [])
    elif kind == "turn":
        session_id = _pick(sessions, op[1])
        if session_id is not None:
            turn = stores.apply(
                lambda s: s.sessions.add_turn(session_id, llm_latency_ms=op[2], llm_cost=op[3])
            )
            if turn is not None:
                turns.append(turn.id)
    elif kind == "end":
        session_id = _pick(sessions, op[1])
        if session_id is not None:
            stores.apply(lambda s: s.sessions.end(session_id))
    elif kind == "rolled_back_end":
        session_id = _pick(sessions, op[1])
        if session_id is not None:

            def end_then_roll_back(s: clonestore.Store) -> str:
                try:
                    with s.transaction():
                        s.sessions.end(session_id)
                        raise _Rollback
                except _Rollback:
                    return "rolled back"

            stores.apply(end_then_roll_back)
    elif kind == "delete_session":
        session_id = _pick(sessions, op[1])
        if session_id is not None:
            stores.apply(lambda s: s.sessions.hard_delete(session_id))
    elif kind == "delete_turn":
        turn_id = _pick(turns, op[1])
        if turn_id is not None:
            stores.apply(lambda s: s.turns.hard_delete(turn_id))
    elif kind == "erase":
        user_id = _pick(users, op[1])
        if user_id is not None:
            stores.apply(lambda s: s.erase_user(user_id))
    stores.clock.advance(1)


@settings(max_examples=25, deadline=None)
@given(ops=st.lists(_OPS, min_size=1, max_size=25))
@example(ops=[("delete_session", 0)])
@example(ops=[("delete_turn", 0), ("upsert", 0, 7), ("end", 1), ("rolled_back_end", 2)])
@example(ops=[("create_many", 1, 2), ("end", 3), ("erase", 0)])
def test_kept_statistics_equal_computed_ones(differential_stores: Stores, ops: list[Any]) -> None:
    """After random writes, each user's kept statistics equal those summed over their
    sessions, on every backend; totals rows and the answers agree with memory://."""
    stores = differential_stores
    stores.reset()
    state: dict[str, list[str]] = {"users": [], "sessions": [], "turns": []}
    # A start with something in every state, so short sequences reach ended sessions.
    setup = [("user",), ("user",), ("session", 0, 0), ("session", 0, -5), ("session", 1, 5)]
    setup += [("turn", i, 10 * i, Decimal("0.25")) for i in range(6)]
    setup += [("end", 0)]
    for op in [*setup, *ops]:
        _apply(stores, op, state)
    for user_id in state["users"]:
        kept = stores.apply(lambda s, u=user_id: s.sessions.user_statistics(u))
        for name, store in stores:
            computed = store.sessions._computed_statistics(user_id)
            assert store.sessions.user_statistics(user_id) == computed, name
        assert kept is None or kept.total_cost >= Decimal(0)
    stores.assert_same_tables()
