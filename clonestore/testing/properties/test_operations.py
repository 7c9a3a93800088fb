"""Differential property: random operation sequences agree with the oracle.

:class:`BackendsAgree` applies every operation to all the stores of a
:class:`~clonestore.testing.differential.Stores` and compares results, error
classes and, after each step, every table. See :mod:`clonestore.testing.properties`.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any, Final

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

import clonestore
from clonestore.records import SESSION_STATES
from clonestore.testing import strategies as s
from clonestore.testing.differential import Stores
from clonestore.testing.profiles import load_default_profile
from clonestore.vectors import METRICS

__all__ = [
    "STEPS",
    "BackendsAgree",
    "machine_for",
    "test_backends_agree_on_random_operation_sequences",
]

load_default_profile()

#: Steps per state-machine example.
STEPS: Final = 30
#: More keyset pages than a walk over STEPS users can take: a walk past it never ends.
MAX_PAGES: Final = 4 * STEPS


class _Rollback(Exception):
    """Raised inside a transaction to roll it back."""


def _in_transaction(store: clonestore.Store, fn: Any, rollback: bool) -> Any:
    try:
        with store.transaction():
            result = fn(store)
            if rollback:
                raise _Rollback
            return result
    except _Rollback:
        return "rolled back"


class BackendsAgree(RuleBasedStateMachine):
    """Applies every operation to all stores; results, errors and tables must agree."""

    #: The stores under test; :func:`machine_for` binds them in a subclass.
    stores: Stores
    #: Whether a step may have written since the tables were last compared.
    unchecked = True
    #: Whether a step that only reads ran since the tables were last compared.
    read_since_check = False
    #: Columns left out of the table comparisons, by table: values drawn at random by
    #: design (see :meth:`Stores.assert_same_tables`).
    random_columns: Mapping[str, Collection[str]] = {}

    users = Bundle("users")
    models = Bundle("models")
    sessions = Bundle("sessions")
    documents = Bundle("documents")
    memories = Bundle("memories")

    @initialize()
    def fresh(self) -> None:
        self.stores.reset()
        self.unchecked, self.read_since_check = True, False

    def run(self, fn: Any, *, reads_only: bool = False) -> Any:
        """``fn`` on every store; the oracle's result (see :meth:`Stores.apply`).
        ``reads_only``: a step meant to change nothing, after which the tables are not
        compared at once (see :meth:`tables_agree`)."""
        if reads_only:
            self.read_since_check = True
        else:
            self.unchecked = True
        return self.stores.apply(fn)

    # ------------------------------------------------------------------ users

    @rule(
        target=users,
        email=s.emails,
        name=s.short_name,
        traits=s.tag_lists,
        tier=st.sampled_from(["free", "pro", "enterprise"]),
        settings=s.json_values,
    )
    def create_user(
        self, email: str, name: str, traits: list[str], tier: str, settings: Any
    ) -> Any:
        user = self.run(
            lambda st_: st_.users.create(
                email=email,
                name=name,
                personality_traits=traits,
                subscription_tier=tier,
                settings={"v": settings},
            )
        )
        return user.id if user is not None else multiple()

    @rule(
        field=st.sampled_from(
            ["name", "email", "settings", "subscription_tier", "personality_traits", "version"]
        ),
        value=st.one_of(
            s.bad_text,
            s.bad_json,
            s.non_finite,
            s.naive_datetimes,
            s.out_of_range_ints,
            st.just("platinum"),
        ),
    )
    def create_user_with_bad_input(self, field: str, value: Any) -> None:
        fields = {"email": "bad@example.com", "name": "Bad", field: value}
        self.run(lambda st_: st_.users.create(**fields))

    @rule(user=users, name=s.short_name, stale=st.sampled_from([None, "current", "stale"]))
    def update_user(self, user: str, name: str, stale: str | None) -> None:
        def op(st_: clonestore.Store) -> Any:
            expected = None
            if stale is not None:
                current = st_.users.get(user).version
                expected = current if stale == "current" else current + 1
            return st_.users.update(user, expected_version=expected, name=name)

        self.run(op)

    @rule(user=users, email=s.emails)
    def change_email(self, user: str, email: str) -> None:
        self.run(lambda st_: st_.users.update(user, email=email))

    @rule(email=s.emails)
    def find_by_email(self, email: str) -> None:
        self.run(lambda st_: st_.users.find_by_email(email), reads_only=True)

    @rule(user=users)
    def delete_user(self, user: str) -> None:
        self.run(lambda st_: st_.users.delete(user))

    @rule(user=users)
    def restore_user(self, user: str) -> None:
        self.run(lambda st_: st_.users.restore(user))

    @rule(user=consumes(users))
    def erase_user(self, user: str) -> None:
        self.run(lambda st_: st_.erase_user(user))

    # ------------------------------------------------------------------ models

    @rule(
        target=models,
        user=users,
        name=s.short_name,
        score=st.one_of(st.none(), s.unit_floats, st.sampled_from([-0.1, 1.5])),
    )
    def create_model(self, user: str, name: str, score: float | None) -> Any:
        model = self.run(
            lambda st_: st_.voice_models.create(
                user_id=user, name=name, provider="p", quality_score=score
            )
        )
        return model.id if model is not None else multiple()

    @rule(model=models)
    def activate(self, model: str) -> None:
        self.run(lambda st_: st_.voice_models.activate(model))

    @rule(model=models)
    def delete_model(self, model: str) -> None:
        self.run(lambda st_: st_.voice_models.delete(model))

    @rule(user=users)
    def active_for(self, user: str) -> None:
        self.run(lambda st_: st_.voice_models.active_for(user), reads_only=True)

    # ------------------------------------------------------------------ sessions

    @rule(target=sessions, user=users)
    def create_session(self, user: str) -> Any:
        session = self.run(lambda st_: st_.sessions.create(user_id=user))
        return session.id if session is not None else multiple()

    @rule(session=sessions, state=st.sampled_from(SESSION_STATES))
    def update_state(self, session: str, state: str) -> None:
        self.run(lambda st_: st_.sessions.update_state(session, state))

    @rule(
        session=sessions,
        latencies=st.lists(st.integers(0, 5000), min_size=4, max_size=4),
        costs=st.lists(s.money, min_size=3, max_size=3),
        transcript=s.text,
    )
    def add_turn(
        self, session: str, latencies: list[int], costs: list[Decimal], transcript: str
    ) -> None:
        self.run(
            lambda st_: st_.sessions.add_turn(
                session,
                user_transcript=transcript,
                llm_response=transcript[::-1],
                asr_latency_ms=latencies[0],
                rag_latency_ms=latencies[1],
                llm_latency_ms=latencies[2],
                tts_latency_ms=latencies[3],
                asr_cost=costs[0],
                llm_cost=costs[1],
                tts_cost=costs[2],
            )
        )

    @rule(session=sessions)
    def end_session(self, session: str) -> None:
        self.run(lambda st_: st_.sessions.end(session))

    @rule(user=users)
    def user_statistics(self, user: str) -> None:
        self.run(lambda st_: st_.sessions.user_statistics(user), reads_only=True)

    # ------------------------------------------------------------------ documents and memories

    @rule(target=documents, user=users, tags=s.tag_lists, name=s.short_name)
    def create_document(self, user: str, tags: list[str], name: str) -> Any:
        doc = self.run(lambda st_: st_.documents.create(user_id=user, filename=name, tags=tags))
        return doc.id if doc is not None else multiple()

    @rule(
        document=documents,
        status=st.sampled_from(["pending", "processing", "completed", "failed", "archived"]),
    )
    def update_status(self, document: str, status: str) -> None:
        error = "boom" if status == "failed" else None
        self.run(lambda st_: st_.documents.update_status(document, status, error_message=error))

    @rule(user=users, tags=s.tag_lists, match=st.sampled_from(["any", "all"]))
    def search_by_tags(self, user: str, tags: list[str], match: str) -> None:
        self.run(
            lambda st_: st_.documents.search_by_tags(user, tags, match=match), reads_only=True
        )

    @rule(target=memories, user=users, content=s.nonempty_text, vector=s.vectors)
    def add_memory(self, user: str, content: str, vector: list[float]) -> Any:
        memory = self.run(lambda st_: st_.memories.add(user, content, vector))
        return memory.id if memory is not None else multiple()

    @rule(
        user=users,
        vector=s.vectors,
        metric=st.sampled_from(METRICS),
        limit=st.sampled_from([0, 1, 3, 10**6]),  # 0 is refused everywhere
        kind=st.sampled_from([None, "fact", "preference"]),
    )
    def similar(
        self, user: str, vector: list[float], metric: str, limit: int, kind: str | None
    ) -> None:
        where = None if kind is None else {"memory_type": kind}
        self.run(
            lambda st_: st_.memories.similar(user, vector, limit, metric, where=where),
            reads_only=True,
        )

    @rule(vector=s.vectors, metric=st.sampled_from(METRICS), limit=st.sampled_from([1, 5]))
    def nearest(self, vector: list[float], metric: str, limit: int) -> None:
        self.run(lambda st_: st_.memories.nearest(vector, limit, metric), reads_only=True)

    @rule(memory=memories, vector=s.vectors, kind=st.sampled_from(["fact", "preference"]))
    def update_memory(self, memory: str, vector: list[float], kind: str) -> None:
        self.run(lambda st_: st_.memories.update(memory, embedding=vector, memory_type=kind))

    @rule(memory=memories, restore=st.booleans())
    def delete_memory(self, memory: str, restore: bool) -> None:
        def body(st_: clonestore.Store) -> Any:
            st_.memories.delete(memory)
            return st_.memories.restore(memory) if restore else None

        self.run(body)

    @rule(memory=consumes(memories))
    def hard_delete_memory(self, memory: str) -> None:
        self.run(lambda st_: st_.memories.hard_delete(memory))

    # ------------------------------------------------------------------ transactions, time, queries

    @rule(user=users, email=s.emails, name=s.short_name, rollback=st.booleans())
    def transaction(self, user: str, email: str, name: str, rollback: bool) -> None:
        def body(st_: clonestore.Store) -> Any:
            st_.users.update(user, name=name)
            return st_.users.create(email=email, name=name)

        self.run(lambda st_: _in_transaction(st_, body, rollback))

    @rule(seconds=st.sampled_from([0, 0.000001, 1, 3600]))
    def advance_clock(self, seconds: float) -> None:
        self.stores.clock.advance(seconds)

    @rule(
        order=st.sampled_from(["name", "-name", "email", "-created_at", "subscription_tier"]),
        needle=st.sampled_from(["a", "A", "%", "_", "\\", "ß", "SS", ""]),
        lookup=st.sampled_from(
            [
                "name__contains",
                "name__startswith",
                "email__endswith",
                "name__gte",
                "personality_traits__overlap",
            ]
        ),
        size=st.integers(1, 4),
        with_deleted=st.booleans(),
    )
    def query_users(
        self, order: str, needle: str, lookup: str, size: int, with_deleted: bool
    ) -> None:
        value: Any = [needle] if lookup.endswith("overlap") else needle
        where = {lookup: value}

        def walk(st_: clonestore.Store) -> Any:
            pages, cursor = [], None
            for _ in range(MAX_PAGES):
                page = st_.users.page(
                    where=where, order_by=order, size=size, cursor=cursor, with_deleted=with_deleted
                )
                pages.append(page.items)
                cursor = page.next_cursor
                if cursor is None:
                    return pages, st_.users.count(where, with_deleted=with_deleted)
            raise AssertionError(f"{st_.url}: keyset pages never end ({order!r}, {where!r})")

        self.run(walk, reads_only=True)

    @invariant()
    def tables_agree(self) -> None:
        """Every table the same everywhere, after each step that may have written. After a
        step meant only to read the tables are compared later: after the next step that
        writes, or at the example's end (a read that wrote still shows, as no step undoes
        a stray row of one store); comparing every table of every store after each read
        was a third of the state machine's time."""
        if self.unchecked:
            self.stores.assert_same_tables(self.random_columns)
            self.unchecked = self.read_since_check = False

    def teardown(self) -> None:
        if self.read_since_check and sys.exc_info()[1] is None:  # not while a step fails
            self.stores.assert_same_tables(self.random_columns)


def test_backends_agree_on_random_operation_sequences(differential_stores: Stores) -> None:
    """Any sequence of operations gives the same results, errors and tables everywhere."""
    run_state_machine_as_test(
        machine_for(differential_stores),
        # Read the profile now, not at import: a database round trip has no deadline.
        settings=settings(settings.default, stateful_step_count=STEPS, deadline=None),
    )


def machine_for(stores: Stores) -> type[BackendsAgree]:
    """:class:`BackendsAgree` driving ``stores``."""
    return type("BackendsAgree", (BackendsAgree,), {"stores": stores})
