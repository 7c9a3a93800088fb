"""The whole observable state of a store, to compare two stores: what a dump and load
must keep (``store.dump``/``store.load``), and what any two equivalent databases share.

:func:`observable_state` asks every repository call that reads (lists with and without
deleted rows, counts, keyset pages, gets, each user's email lookup, export, session
statistics, active models, tag search, vector search from each memory; the audit
plugin's verification, per-user entries and statistics) and reads every table's rows
through the SPI; :func:`assert_same_observable_state` compares two stores' answers and
names the first that differs.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from typing import Any

import clonestore
from clonestore.query import TRUE, OrderBy
from clonestore.spi import capabilities_of

__all__ = [
    "PLUGINS",
    "assert_same_observable_state",
    "audit_plugin",
    "observable_state",
    "plugins_for",
    "populate",
]

#: The built-in plugins whose tables :func:`populate` fills.
PLUGINS = ("audit", "cache", "ratelimit")


def audit_plugin(backend: Any) -> object:
    """The audit plugin for ``backend``: the guarded one (``"audit"``) needs ``append_only``;
    the chain does not, so without the capability it runs unguarded (``guard=False``)."""
    if "append_only" in capabilities_of(backend):
        return "audit"
    (entry,) = importlib.metadata.entry_points(group="clonestore", name="audit")
    return type(entry.load())(guard=False)


def plugins_for(backend: Any) -> list[object]:
    """:data:`PLUGINS` as ``backend`` can run them (see :func:`audit_plugin`)."""
    return [audit_plugin(backend) if name == "audit" else name for name in PLUGINS]

#: Repositories with ``deleted_at`` (soft delete): read with and without deleted rows.
_PAGE_SIZE = 3


def _scored(found: list[Any]) -> list[tuple[str, float]]:
    """Vector-search results as ``(id, score)``, scores to 9 places (exact on every
    backend within 1e-9)."""
    return [(item.memory.id, round(item.score, 9)) for item in found]


def _repository_answers(store: clonestore.Store) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name in sorted(store.repository_context.repositories):
        repo = getattr(store, name)
        everything = repo.find_many(with_deleted=True, order_by="id")
        state[f"{name}.find_many(with_deleted)"] = everything
        state[f"{name}.find_many()"] = repo.find_many(order_by="id")
        state[f"{name}.count()"] = repo.count()
        state[f"{name}.count(with_deleted)"] = repo.count(with_deleted=True)
        pages = []
        cursor: str | None = None
        while True:
            page = repo.page(size=_PAGE_SIZE, cursor=cursor)
            pages.append([item.id for item in page.items])
            cursor = page.next_cursor
            if cursor is None:
                break
        state[f"{name}.page()"] = pages
        state[f"{name}.get_or_none(each)"] = [repo.get_or_none(item.id) for item in everything]
    users = store.users.find_many(with_deleted=True, order_by="id")
    live = [user for user in users if user.deleted_at is None]
    for user in users:
        uid = user.id
        state[f"users.find_by_email({user.email})"] = store.users.find_by_email(user.email)
        state[f"export_user({uid})"] = store.export_user(uid)
    for user in live:
        uid = user.id
        state[f"sessions.user_statistics({uid})"] = store.sessions.user_statistics(uid)
        state[f"voice_models.active_for({uid})"] = store.voice_models.active_for(uid)
        state[f"face_models.active_for({uid})"] = store.face_models.active_for(uid)
        tags = sorted({tag for d in store.documents.find_many(where={"user_id": uid})
                       for tag in d.tags})
        if tags:
            for match in ("any", "all"):
                state[f"documents.search_by_tags({uid}, {match})"] = (
                    store.documents.search_by_tags(uid, tags, match=match)
                )
        for memory in store.memories.find_many(where={"user_id": uid}, order_by="id"):
            vector = memory.embedding
            if vector is None or not any(vector):
                continue
            for metric in ("cosine", "l2"):
                state[f"memories.similar({uid}, {memory.id}, {metric})"] = _scored(
                    store.memories.similar(uid, vector, limit=5, metric=metric)
                )
    for session in store.sessions.find_many(order_by="id"):
        state[f"sessions.get_with_turns({session.id})"] = store.sessions.get_with_turns(
            session.id
        )
    if "audit" in store.services:
        audit = store.audit
        report = audit.verify()
        state["audit.verify()"] = (report.ok, report.checked, report.chains, report.reason)
        state["audit.find()"] = audit.find(limit=10_000)
        for user in users:
            state[f"audit.find_by_user({user.id})"] = audit.find_by_user(user.id, limit=10_000)
            state[f"audit.user_statistics({user.id})"] = audit.user_statistics(
                user.id, days=36_600
            )
    return state


def populate(store: clonestore.Store, users: int = 3) -> None:
    """Give ``store`` some of everything: users (one soft-deleted with what it owns, one
    with a non-ASCII caller-chosen id), active and inactive models, sessions with turns
    and costs, documents with tags and statuses, memories with vectors and metadata, and
    with the :data:`PLUGINS` enabled cache entries, rate-limit windows and audit chains
    with a recorded head."""
    from decimal import Decimal

    for n in range(users):
        extra: dict[str, Any] = {"id": f"ü-{n}:β"} if n == 1 else {}
        user = store.users.create(
            email=f"Person.{n}@Example.com", name=f"Person {n} ✓",
            personality_traits=["curious", "curious", "kind"], subscription_tier="pro",
            settings={"theme": "dark", "n": n, "ratio": 1.0, "nested": {"x": [1, 2.5, None]}},
            **extra,
        )
        voice = store.voice_models.create(user_id=user.id, name=f"voice {n}",
                                          provider="elevenlabs")
        store.voice_models.create(user_id=user.id, name="spare", provider="elevenlabs")

        store.voice_models.activate(voice.id)
        store.face_models.create(user_id=user.id, name=f"face {n}", provider="did")

        session = store.sessions.create(user_id=user.id, voice_model_id=voice.id)
        for t in range(3):
            store.sessions.add_turn(
                session.id, user_transcript=f"hello {t}", llm_response=f"hi {t}",
                llm_latency_ms=100 + t, llm_cost=Decimal("0.000123") * (t + 1),
            )
        store.sessions.update_state(session.id, "listening")
        if n % 2 == 0:
            store.sessions.end(session.id)
        document = store.documents.create(user_id=user.id, filename=f"cv-{n}.pdf",
                                          tags=["cv", f"t{n}", "cv"])
        store.documents.update_status(document.id, "processing")
        store.documents.create(user_id=user.id, filename="notes.txt", tags=["notes"])
        for m in range(3):
            store.memories.add(user.id, f"memory {m} of {n}",
                               [0.1 * (m + 1), -0.25 + n, 1.0 / 3.0, 1e-7],
                               metadata={"kind": "fact", "score": m + 0.5})
        if "cache" in store.services:
            store.cache.set_embedding(f"q-{n}", [0.5, 0.25, 1.0 / 3.0], ttl=3600,
                                      user_id=user.id)
            store.cache.set_llm_response(f"p-{n}", f"answer {n}", "openai", ttl=3600,
                                         user_id=user.id)
        if "ratelimit" in store.services:
            for _ in range(n + 1):
                store.ratelimit.check_and_increment(user.id, "chat", limit=10,
                                                    window_seconds=3600)
        if n == users - 1 and n > 0:
            store.users.delete(user.id)  # soft: cascades to what the user owns
    if "audit" in store.services:
        store.audit.head()


def observable_state(store: clonestore.Store) -> dict[str, Any]:
    """Everything a caller can observe of ``store``: each read call's answer, by a name
    saying which call (``"users.count()"``), and each table's rows
    (``"rows:users"``), in id order."""
    state = _repository_answers(store)
    for name, spec in sorted(store.tables.items()):
        state[f"rows:{name}"] = store.backend.select(spec, TRUE, (OrderBy("id"),))
    return state


def assert_same_observable_state(expected: clonestore.Store, actual: clonestore.Store) -> None:
    """Assert that the two stores answer every read call alike and hold the same rows;
    the message names the calls that differ and the first difference."""
    first = observable_state(expected)
    second = observable_state(actual)
    differ = sorted(
        key for key in first.keys() | second.keys() if first.get(key) != second.get(key)
    )
    if differ:
        key = differ[0]
        raise AssertionError(
            f"{len(differ)} answer(s) differ, first {key}:\n"
            f"  {expected.url}: {_short(first.get(key))}\n  {actual.url}: {_short(second.get(key))}"
            f"\n  all: {differ[:20]}"
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 2000 else text[:2000] + "..."


def counts(state: Mapping[str, Any]) -> dict[str, int]:
    """How many rows each table holds in an :func:`observable_state`."""
    return {key[5:]: len(rows) for key, rows in state.items() if key.startswith("rows:")}
