"""Contract: the optional capabilities of :data:`clonestore.spi.CAPABILITIES`.

A backend declares each capability it offers once: one with a protocol by
implementing the protocol (so an inherited or stub method declares it too), the
others by name in ``Backend.capabilities``; :func:`clonestore.spi.capabilities_of`
gives the set. Each has a test here that verifies it when declared and otherwise
skips, naming the capability: the only skips in the kit. ``update_and_insert`` is the exception:
without it the core runs the reference over the backend's own operations, so
its tests hold every backend to the same meaning, declared or not. A capability
may make an operation faster, never change its meaning, so ``vector_search`` and ``bulk_copy`` are
held to the results ``memory://`` gives. The table options (``ephemeral``,
``append_only``) are checked on tables of the kit's own (``kit_*``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, cast

import attrs
import numpy as np
import pytest

import clonestore
from clonestore import AlreadyExists, BackendError, Store
from clonestore.plugin_helpers import acting_user
from clonestore.query import TRUE, And, Cond, Expr, OrderBy
from clonestore.spi import (
    CAPABILITIES,
    AppendOnly,
    AppendOnlyTables,
    Backend,
    Backup,
    Column,
    Increment,
    ListenNotify,
    Migrations,
    Row,
    RowSecurity,
    RowTransfer,
    Scrub,
    SelectColumns,
    TableSpec,
    TextSearch,
    TimePartitions,
    Unique,
    UpdateAndInsert,
    UpdateAndInsertMany,
    UpsertReturning,
    VectorDimensions,
    VectorSearch,
    capabilities_of,
)
from clonestore.spi_reference import update_and_insert_reference
from clonestore.testing import FrozenClock, Inbox, StoreFactory, sequential_ids
from clonestore.testing.contract._builders import aborted, race
from clonestore.testing.differential import canon
from clonestore.text import parse_query, search_reference
from clonestore.vectors import METRICS, float32_values, nearest_reference

#: The test verifying each optional capability.
CAPABILITY_TESTS = {
    "listen_notify": (
        "test_capability_listen_notify_round_trip",
        "test_capability_listen_notify_delivers_on_commit_only",
    ),
    "vector_search": (
        "test_capability_vector_search_keeps_exact_results",
        "test_capability_vector_search_breaks_ties_by_id",
        "test_capability_vector_search_finds_live_rows_of_the_search_only",
        "test_capability_vector_search_skips_null_and_other_dimensions",
    ),
    "vector_dimensions": ("test_capability_vector_dimensions_sets_the_store_limit",),
    "scrub": ("test_capability_scrub_changes_no_row",),
    "bulk_copy": ("test_capability_bulk_copy_keeps_rows_and_atomicity",),
    "ephemeral": ("test_capability_ephemeral_tables_keep_the_meaning_of_tables",),
    "append_only": ("test_capability_append_only_refuses_all_but_erasure_and_purge",),
    "update_and_insert": (
        "test_capability_update_and_insert_changes_both_or_neither",
        "test_capability_update_and_insert_counts_every_racing_call",
    ),
    "update_and_insert_many": ("test_capability_update_and_insert_many_changes_all_or_none",),
    "upsert_returning": ("test_capability_upsert_returning_gives_the_columns_asked_for",),
    "select_columns": ("test_capability_select_columns_gives_selects_rows_a_column_each",),
    "migrations": ("test_capability_migrations_keep_the_schema_current",),
    "row_transfer": ("test_capability_row_transfer_moves_rows_exactly",),
    "backup": ("test_capability_backup_copies_every_row",),
    "text_search": ("test_capability_text_search_gives_the_reference_answer",),
    "owner_routed": ("test_capability_owner_routed_writes_by_id_name_the_owner",),
    "row_security": ("test_capability_row_security_calls_the_backend_as_the_views_user",),
    "time_partitions": ("test_capability_time_partitions_remove_what_row_by_row_removes",),
}


def _declared(store: Store, capability: str) -> Backend:
    """The store's backend if it declares ``capability`` (see
    :func:`~clonestore.spi.capabilities_of`); otherwise skip, by name."""
    backend = store.backend
    if capability not in capabilities_of(backend):
        pytest.skip(
            f"optional capability {capability!r} not declared by the "
            f"{backend.name!r} backend ({store.url.split('://')[0]}://)"
        )
    return backend


def test_capability_tests_cover_every_capability() -> None:
    """Every optional capability clonestore knows has a kit test."""
    assert set(CAPABILITY_TESTS) == set(CAPABILITIES)
    assert all(name in globals() for names in CAPABILITY_TESTS.values() for name in names)


def test_capability_text_search_gives_the_reference_answer(store: Store) -> None:
    """text_search gives search_reference's rows, order and scores over the rows of where."""
    # To the bit; per owner and across owners, after an update and a soft delete.
    backend = _declared(store, "text_search")
    assert isinstance(backend, TextSearch)
    ada, bob = (store.users.create(email=f"{secrets.token_hex(6)}@example.com", name=n)
                for n in ("Ada", "Bob"))
    words = ["Red", "car", "café", "cafe", "STRASSE", "straße", "x1", "tea", "red"]
    rng = random.Random(24)
    made = []
    for i in range(40):
        owner = ada if i % 3 else bob
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
        made.append(store.documents.create(
            user_id=owner.id, filename=f"f{i}.txt", text_content=text if i % 5 else None,
            tags=[rng.choice(words) + " " + rng.choice(words)] if i % 4 == 0 else [],
        ))
    store.documents.delete(made[1].id)
    store.documents.update(made[2].id, text_content="red car tea")
    spec = store.documents.spec
    fields = ("filename", "text_content", "tags")
    for where in (store.documents.where({"user_id": ada.id}), store.documents.where()):
        for text in ["red", "car red", '"red car"', "café", "strasse", "tea x1", "nothing"]:
            query = parse_query(text)
            for limit in (1, 3, 100):
                got = backend.text_search(spec, where, fields, query, limit)
                want = search_reference(backend.select(spec, where), fields, query, limit)
                assert [(r["id"], canon(v)) for r, v in got] == [
                    (r["id"], canon(v)) for r, v in want
                ], (text, limit)


def test_capability_vector_dimensions_sets_the_store_limit(store: Store) -> None:
    """vector_dimensions names positive int limits; the store keeps vectors up to the smallest."""
    # Lowered to it on every vector column; longer ones are a ValidationError (test_memories).
    backend = _declared(store, "vector_dimensions")
    assert isinstance(backend, VectorDimensions)
    limits = dict(backend.vector_dimension_limits())
    assert limits, "vector_dimension_limits() names no limit"
    assert all(type(k) is str and type(v) is int and v >= 1 for k, v in limits.items()), limits
    assert store.max_vector_dimensions == min(limits.values())
    for spec in store.tables.values():
        for column in spec.columns:
            if column.kind == "vector":
                assert column.max_length is not None, spec.name
                assert column.max_length <= min(limits.values()), (spec.name, column.name)


def test_capability_row_transfer_moves_rows_exactly(store: Store) -> None:
    """export_rows pages every row (deleted too) by id; import_rows writes them exactly, or none."""
    backend = _declared(store, "row_transfer")
    assert isinstance(backend, RowTransfer)
    users = store.tables["users"]
    made = [store.users.create(email=f"t{n}@example.com", name=f"T {n}") for n in range(5)]
    store.users.delete(made[2].id)
    expected = backend.select(users, TRUE, (OrderBy("id"),))
    pages, after = [], None
    while True:
        rows = backend.export_rows(users, after, 2)
        assert len(rows) <= 2
        if not rows:
            break
        pages.extend(rows)
        after = rows[-1]["id"]
    assert pages == expected
    backend.delete(users, Cond("id", "in", [expected[0]["id"], expected[1]["id"]]))
    with pytest.raises(AlreadyExists):  # expected[3] is still there: nothing is written
        backend.import_rows(users, [expected[0], expected[1], expected[3]])
    assert [r["id"] for r in backend.select(users, TRUE, (OrderBy("id"),))] == [
        r["id"] for r in expected[2:]
    ]
    backend.import_rows(users, expected[:2])
    assert backend.select(users, TRUE, (OrderBy("id"),)) == expected


def test_capability_backup_copies_every_row(store: Store) -> None:
    """backup(path) writes a copy that opens on the URL it returns; never over a file."""
    backend = _declared(store, "backup")
    assert isinstance(backend, Backup)
    user = store.users.create(email="kept@example.com", name="Kept")
    store.memories.add(user.id, "kept", [1.0, 2.0])
    with tempfile.TemporaryDirectory(prefix="clonestore-kit-") as directory:
        _backup_copies_every_row(store, backend, Path(directory) / "copy")


def _backup_copies_every_row(store: Store, backend: Backup, target: Path) -> None:
    url = backend.backup(str(target))
    with clonestore.open(url, create_tables=False) as copy:
        for name, spec in store.tables.items():
            assert copy.backend.select(spec, TRUE, (OrderBy("id"),)) == store.backend.select(
                spec, TRUE, (OrderBy("id"),)
            ), name
    with pytest.raises(clonestore.ConfigurationError):
        backend.backup(str(target))


def test_capability_scrub_changes_no_row(store: Store) -> None:
    """After erase_user commits, scrub changes no row (read twice) and the store goes on working."""
    backend = _declared(store, "scrub")
    assert isinstance(backend, Scrub)
    kept = store.users.create(email="kept@example.com", name="Kept")
    gone = store.users.create(email="gone@example.com", name="Gone")
    store.memories.add(gone.id, "about to go", [1.0, 2.0])
    store.erase_user(gone.id)
    before = {name: backend.select(spec, TRUE, (OrderBy("id"),))
              for name, spec in store.tables.items()}
    backend.scrub()
    backend.scrub()
    after = {name: backend.select(spec, TRUE, (OrderBy("id"),))
             for name, spec in store.tables.items()}
    assert after == before
    assert store.users.get(kept.id) == kept
    store.users.update(kept.id, name="Still here")


# ----------------------------------------------------------------------------- listen_notify


def _listen_notify(store: Store) -> ListenNotify:
    backend = _declared(store, "listen_notify")
    assert isinstance(backend, ListenNotify), "declares listen_notify without notify/listen"
    return backend


def _channel() -> str:
    return f"cs_kit_{secrets.token_hex(4)}"


def test_capability_listen_notify_round_trip(store: Store) -> None:
    """listen_notify: a message sent on a channel reaches its listener, and only its own."""
    backend = _listen_notify(store)
    channel = _channel()
    inbox = Inbox()
    stop = backend.listen(channel, inbox)
    try:
        backend.notify(_channel(), "not for us")
        backend.notify(channel, "hello é")
        assert inbox.wait_for(1) == ["hello é"]
        time.sleep(0.2)
        assert inbox.messages == ["hello é"]
    finally:
        stop()


def test_capability_listen_notify_delivers_on_commit_only(store: Store) -> None:
    """listen_notify: inside a transaction a message arrives at commit, never after rollback."""
    backend = _listen_notify(store)
    channel = _channel()
    inbox = Inbox()
    stop = backend.listen(channel, inbox)

    def rolled_back() -> None:
        with store.transaction():
            backend.notify(channel, "rolled back")
            raise RuntimeError("roll back")

    try:
        with pytest.raises(RuntimeError):
            rolled_back()
        with store.transaction():
            backend.notify(channel, "committed")
            time.sleep(0.3)
            assert inbox.messages == [], "delivered before the commit"
        assert inbox.wait_for(1) == ["committed"]
        time.sleep(0.3)
        assert inbox.messages == ["committed"]
    finally:
        stop()


# ----------------------------------------------------------------------------- the others


def _pair(store_factory: StoreFactory) -> tuple[Store, Store]:
    """A store on the URL under test and a memory:// oracle with the same clock and ids."""
    clock = FrozenClock(step=0.000001)
    target = store_factory(clock=clock, id_factory=sequential_ids())
    oracle = clonestore.open(
        "memory://", clock=FrozenClock(step=0.000001), id_factory=sequential_ids()
    )
    return target, oracle


def _declared_pair(store_factory: StoreFactory, capability: str) -> tuple[Store, Store]:
    """:func:`_pair`, skipping by name unless the target declares ``capability``."""
    target, oracle = _pair(store_factory)
    try:
        _declared(target, capability)
    except BaseException:
        oracle.close()
        raise
    return target, oracle


def _vector_corpus(store: Store) -> tuple[str, str]:
    """Two users' memories built to trip an engine: duplicates and exact ties (equal
    vectors, scaled copies), near ties that single precision cannot tell apart, zero
    vectors, other dimensions, magnitudes no engine scores (1e30), the smallest items kept
    (2**-50) and smaller ones the store flushes to 0 (1e-30, float32 subnormals),
    soft-deleted and hard-deleted rows, and another user's better matches."""
    rng = random.Random(9)
    user = store.users.create(email="v@example.com", name="V")
    other = store.users.create(email="w@example.com", name="W")
    for i in range(60):
        angle = i * 0.37
        vector = [round(math.cos(angle), 3), round(math.sin(angle), 3), float(i % 3)]
        store.memories.add(user.id, f"m{i}", vector)
    for i in range(40):
        store.memories.add(user.id, f"r{i}", [rng.gauss(0, 1) for _ in range(3)])
    for i in range(6):  # exact ties: equal vectors, and a scaled copy (equal cosine)
        store.memories.add(user.id, f"tie{i}", [1.0, 0.0, 0.0] if i % 2 else [3.0, 0.0, 0.0])
    for i in range(6):  # near ties, closer than float32 resolves
        store.memories.add(user.id, f"near{i}", [1.0, 1e-9 * i, 0.0])
    store.memories.add(user.id, "zero", [0.0, 0.0, 0.0])
    store.memories.add(user.id, "short", [1.0, 0.0])
    store.memories.add(user.id, "huge", [1e30, 1.0, 0.0])
    store.memories.add(user.id, "smallest", [2.0**-50, 0.0, -(2.0**-50)])
    store.memories.add(user.id, "tiny", [1e-30, 1.0, 0.0])
    store.memories.add(user.id, "subnormal", [1e-45, -1e-40, 1.0])
    store.memories.add(user.id, "all tiny", [1e-30, 0.0, 0.0])  # a zero vector once stored
    store.memories.add(other.id, "theirs", [1.0, 0.0, 0.0])
    gone = store.memories.add(user.id, "soft-deleted", [1.0, 0.0, 0.0])
    store.memories.delete(gone.id)
    erased = store.memories.add(user.id, "hard-deleted", [1.0, 0.0, 0.0])
    store.memories.hard_delete(erased.id)
    back = store.memories.add(user.id, "restored", [0.0, 1.0, 0.0])
    store.memories.delete(back.id)
    store.memories.restore(back.id)
    moved = store.memories.add(user.id, "moved", [1.0, 0.0, 0.0])
    store.memories.update(moved.id, embedding=[-1.0, 0.0, 0.0])
    with contextlib.suppress(RuntimeError), store.transaction():
        store.memories.add(user.id, "rolled-back", [1.0, 0.0, 0.0])
        raise RuntimeError("roll back")
    return user.id, other.id


# As the store keeps them (float32, tiny items flushed): it rounds a query as it rounds
# what it stores, and the reference scores the query as given.
_VECTOR_QUERIES: Final = tuple(
    float32_values(query)
    for query in (
        [1.0, 0.0, 0.0],
        [0.5, -0.5, 2.0],
        [-1.0, 1e-3, 0.0],
        [2.0**-50, 0.0, 0.0],
        [1e-30, 1.0, -1e-40],
        [1e30, -1e30, 1.0],
    )
)


def test_capability_vector_search_keeps_exact_results(store_factory: StoreFactory) -> None:
    """vector_search: similar() and nearest() give the reference's rows, order and scores."""
    target, oracle = _declared_pair(store_factory, "vector_search")
    with oracle:
        users = [_vector_corpus(s) for s in (target, oracle)]
        assert users[0] == users[1]
        user, _ = users[0]
        live = [vars_of(m) for m in target.memories.for_owner(user)]
        assert all(m["content"] not in ("rolled-back", "hard-deleted") for m in live)
        for query in _VECTOR_QUERIES:
            for metric in METRICS:
                for limit in (1, 3, 10, 1000, 10**9):
                    want = nearest_reference(live, "embedding", query, metric, limit)
                    got = target.memories.similar(user, query, limit=limit, metric=metric)
                    assert [(r.memory.id, r.score) for r in got] == [
                        (row["id"], value) for row, value in want
                    ], (query, metric, limit)
                    same: Any = oracle.memories.similar(user, query, limit=limit, metric=metric)
                    assert canon(got) == canon(same), (query, metric, limit)
                if want:
                    middle = want[len(want) // 2][1]
                    key = "max_distance" if metric == "l2" else "min_score"
                    cut: Any = {key: middle}
                    got = target.memories.similar(user, query, limit=1000, metric=metric, **cut)
                    expected = nearest_reference(live, "embedding", query, metric, 1000, middle)
                    assert [r.memory.id for r in got] == [row["id"] for row, _ in expected]
        for s in (target, oracle):
            assert s.memories.similar(user, [1.0, 0.0, 0.0], limit=0) == []
        everyone = [vars_of(m) for m in target.memories.find_many()]
        want = nearest_reference(everyone, "embedding", [1.0, 0.0, 0.0], "cosine", 8)
        got = target.memories.nearest([1.0, 0.0, 0.0], limit=8, where={"memory_type": "fact"})
        assert [(r.memory.id, r.score) for r in got] == [(row["id"], v) for row, v in want]


def _ids(found: Any) -> list[tuple[str, float]]:
    return [(r.memory.id, r.score) for r in found]


def test_capability_vector_search_breaks_ties_by_id(store_factory: StoreFactory) -> None:
    """vector_search: equal scores (duplicates, scaled copies, zero ip query) come by id."""
    target, oracle = _declared_pair(store_factory, "vector_search")
    with oracle:
        for s in (target, oracle):
            user = s.users.create(email="t@example.com", name="T")
            ids = [s.memories.add(user.id, f"d{i}", [1.0, 2.0, 2.0]).id for i in range(12)]
            for i in range(6):
                s.memories.add(user.id, f"s{i}", [2.0 * (i + 1), 4.0 * (i + 1), 4.0 * (i + 1)])
            # rewritten in reverse: an engine ordering by write position gets them backwards
            for id in reversed(ids):
                s.memories.update(id, embedding=[1.0, 2.0, 2.0])
        live = [vars_of(m) for m in target.memories.for_owner(user.id)]
        for metric in METRICS:
            for query in ([1.0, 2.0, 2.0], [0.0, 0.0, 0.0]) if metric != "cosine" else (
                [1.0, 2.0, 2.0],
            ):  # fmt: skip
                for limit in (1, 5, 12, 20):
                    want = nearest_reference(live, "embedding", query, metric, limit)
                    got = target.memories.similar(user.id, query, limit=limit, metric=metric)
                    assert _ids(got) == [(row["id"], v) for row, v in want], (metric, query)
                    same = oracle.memories.similar(user.id, query, limit=limit, metric=metric)
                    assert canon(got) == canon(same), (metric, query, limit)


def test_capability_vector_search_finds_live_rows_of_the_search_only(
    store_factory: StoreFactory,
) -> None:
    """vector_search: only live rows of the owner and the conditions; restored ones too."""
    target, oracle = _declared_pair(store_factory, "vector_search")
    best = [1.0, 0.0, 0.0]
    with oracle:
        for s in (target, oracle):
            user = s.users.create(email="l@example.com", name="L")
            other = s.users.create(email="o@example.com", name="O")
            s.memories.add(user.id, "far", [0.0, 1.0, 0.0])
            s.memories.add(user.id, "pref", [0.9, 0.1, 0.0], memory_type="preference")
            s.memories.add(other.id, "theirs", best)
            s.memories.delete(s.memories.add(user.id, "deleted", best).id)
            s.memories.hard_delete(s.memories.add(user.id, "erased", best).id)
            back = s.memories.add(user.id, "restored", [0.8, 0.2, 0.0])
            s.memories.delete(back.id)
            s.memories.restore(back.id)
            with contextlib.suppress(RuntimeError), s.transaction():
                s.memories.add(user.id, "rolled-back", best)
                raise RuntimeError("roll back")
            gone = s.users.create(email="g@example.com", name="G")
            s.memories.add(gone.id, "cascade", best)
            s.users.delete(gone.id)
        for metric in METRICS:
            got = target.memories.similar(user.id, best, limit=10, metric=metric)
            assert sorted(r.memory.content for r in got) == ["far", "pref", "restored"], metric
            assert canon(got) == canon(oracle.memories.similar(user.id, best, 10, metric))
            everyone = target.memories.nearest(best, limit=10, metric=metric)
            assert sorted(r.memory.content for r in everyone) == [
                "far", "pref", "restored", "theirs"
            ], metric  # fmt: skip
            assert canon(everyone) == canon(oracle.memories.nearest(best, 10, metric))
        prefs = target.memories.similar(user.id, best, 10, where={"memory_type": "preference"})
        assert [r.memory.content for r in prefs] == ["pref"]
        strong = target.memories.similar(user.id, best, 10, min_score=0.9)
        assert [r.memory.content for r in strong] == ["pref", "restored"]
        assert target.memories.similar(user.id, best, 10, metric="ip", min_score=0.85) == [
            r for r in target.memories.similar(user.id, best, 10, metric="ip")
            if r.score >= 0.85
        ]  # fmt: skip
        near = target.memories.similar(user.id, best, 10, metric="l2", max_distance=0.3)
        assert [r.memory.content for r in near] == ["pref", "restored"]


def _float32(values: list[float]) -> list[float]:
    """``values`` rounded to float32, as the core hands vectors to a backend (tiny items
    kept: a database written before the core flushed them holds such vectors)."""
    rounded: list[float] = np.asarray(values, dtype=np.float32).tolist()
    return rounded


#: The kit's vector table: a nullable vector column on a table without an owner.
VECTORS: Final = TableSpec(
    name="kit_vectors",
    columns=(
        Column(name="id", kind="id"),
        Column(name="label", kind="text"),
        Column(name="v", kind="vector", nullable=True),
    ),
)


def test_capability_vector_search_skips_null_and_other_dimensions(store: Store) -> None:
    """vector_search (SPI, kit_vectors): NULL and other dimensions never; zero for l2/ip."""
    backend = _declared(store, "vector_search")
    assert isinstance(backend, VectorSearch), "declares vector_search without nearest()"
    backend.create_tables([VECTORS])
    backend.delete(VECTORS, TRUE)  # what an earlier run of the kit left
    rng = random.Random(5)
    values: list[list[float] | None] = [None, [0.0, 0.0, 0.0], [1.0, 0.0], [1.0, 0.0, 0.0, 0.0]]
    # Float32 values, as the core hands every vector to a backend (schema kind vector).
    values += [_float32([rng.gauss(0, 1) for _ in range(3)]) for _ in range(20)]
    values += [None, [2.0, 0.0, 0.0], [1.0, 0.0, 0.0], None, [0.0, 0.0, 0.0]]
    # Items below 2**-50, which the core now flushes to 0 but older versions stored: no
    # engine scores them, and they must still be found exactly.
    values += [_float32(v) for v in ([1e-30, 1.0, 0.0], [1e-45, -1e-40, 0.5], [1e-30, 0.0, 0.0])]
    rows = [
        {"id": _uid(i), "label": "odd" if i % 2 else "even", "v": v} for i, v in enumerate(values)
    ]
    for row in rows:
        backend.insert(VECTORS, row)
    odd = Cond("label", "eq", "odd")
    for metric in METRICS:
        for query in ([1.0, 0.0, 0.0], [0.3, -2.0, 0.5]):
            for where, matching in ((TRUE, rows), (odd, [r for r in rows if r["label"] == "odd"])):
                for limit in (1, 4, 100):
                    want = nearest_reference(matching, "v", query, metric, limit)
                    got = backend.nearest(VECTORS, where, "v", query, metric, limit)
                    assert [(r["id"], v) for r, v in got] == [
                        (r["id"], v) for r, v in want
                    ], (metric, query, where, limit)
                    assert all(r == rows[int(r["id"][-12:])] for r, _ in got)


def vars_of(memory: Any) -> dict[str, Any]:
    """A memory's fields as a row dict (what the reference takes)."""
    return {f.name: getattr(memory, f.name) for f in attrs.fields(type(memory))}


def test_capability_bulk_copy_keeps_rows_and_atomicity(store_factory: StoreFactory) -> None:
    """bulk_copy: a large create_many stores what memory:// stores, and a clash stores none."""
    target, oracle = _declared_pair(store_factory, "bulk_copy")
    with oracle:
        for s in (target, oracle):
            user = s.users.create(email="b@example.com", name="B")
            rows = [
                {
                    "user_id": user.id,
                    "filename": f"f{i}%_\\ß",
                    "tags": ["a", "a", "ß"][: i % 4],
                    "size_bytes": (2**63 - 1) if i % 7 == 0 else i,
                    "text_content": None,
                }
                for i in range(1000)
            ]
            s.documents.create_many(rows)
            s.users.create(email="dup@example.com", name="D")
        assert canon(target.documents.find_many(order_by="id")) == canon(
            oracle.documents.find_many(order_by="id")
        )
        clash = [{"email": f"u{i}@example.com", "name": "U"} for i in range(500)]
        clash.append({"email": "DUP@example.com", "name": "again"})
        for s in (target, oracle):
            with pytest.raises(AlreadyExists):
                s.users.create_many(clash)
            assert s.users.count() == 2


# ----------------------------------------------------------------------------- table options

#: The kit's ephemeral table: a counter per name, as the rate limiter keeps.
EPHEMERAL: Final = TableSpec(
    name="kit_ephemeral",
    columns=(
        Column(name="id", kind="id"),
        Column(name="name", kind="key", max_length=50),
        Column(name="hits", kind="int"),
    ),
    unique=(Unique(("name",)),),
    ephemeral=True,
)

#: The kit's append-only table: a ledger whose notes may be erased and whose
#: oldest rows may be purged, as the audit log is.
LEDGER: Final = TableSpec(
    name="kit_append_only",
    columns=(
        Column(name="id", kind="id"),
        Column(name="seq", kind="int"),
        Column(name="body", kind="text"),
        Column(name="note", kind="text", nullable=True),
        Column(name="tags", kind="json", nullable=True),
        Column(name="erased_at", kind="datetime", nullable=True),
    ),
    unique=(Unique(("seq",)),),
    append_only=AppendOnly(erasable=("note", "tags"), erased_at="erased_at", purge_by="seq"),
)


def _uid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def test_capability_ephemeral_tables_keep_the_meaning_of_tables(store: Store) -> None:
    """ephemeral: a table counts exactly under threads, rolls back, keeps rows across changes."""
    backend = _declared(store, "ephemeral")
    backend.create_tables([EPHEMERAL])
    backend.delete(EPHEMERAL, TRUE)  # what an earlier run of the kit left

    def hit(n: int = 1) -> dict[str, Any]:
        row = {"id": _uid(1), "name": "k", "hits": n}
        return backend.upsert(EPHEMERAL, ("name",), row, {"hits": Increment(n)})

    threads = [threading.Thread(target=lambda: [hit() for _ in range(25)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert hit(0)["hits"] == 100

    def rolled_back() -> None:
        with backend.transaction():
            backend.insert(EPHEMERAL, {"id": _uid(2), "name": "gone", "hits": 1})
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        rolled_back()
    assert backend.count(EPHEMERAL, TRUE) == 1
    kept = backend.get(EPHEMERAL, _uid(1))
    backend.create_tables([attrs.evolve(EPHEMERAL, ephemeral=False)])
    assert backend.get(EPHEMERAL, _uid(1)) == kept
    backend.create_tables([EPHEMERAL])
    assert backend.get(EPHEMERAL, _uid(1)) == kept


def test_capability_append_only_refuses_all_but_erasure_and_purge(store: Store) -> None:
    """append_only: all but erasure and purge is refused (BackendError); purge takes the oldest."""
    backend = _declared(store, "append_only")
    assert isinstance(backend, AppendOnlyTables), "declares append_only without purge()"
    backend.create_tables([LEDGER])
    backend.purge(LEDGER, 2**62)  # what an earlier run of the kit left
    rows = [
        {"id": _uid(i), "seq": i, "body": f"b{i}", "note": "n", "tags": ["t"], "erased_at": None}
        for i in (1, 2, 3)
    ]
    backend.insert_many(LEDGER, rows[:2])
    backend.insert(LEDGER, rows[2])
    first = Cond("seq", "eq", 1)
    for changes in ({"body": "x"}, {"note": "other"}, {"seq": 9}, {"tags": ["u"]}):
        with pytest.raises(BackendError, match="append-only"):
            backend.update(LEDGER, first, changes)
    with pytest.raises(BackendError, match="append-only"):
        backend.delete(LEDGER, first)
    with pytest.raises(BackendError, match="append-only"):
        backend.upsert(LEDGER, ("seq",), {**rows[0], "id": _uid(9)}, {"body": "y"})

    def erase_then_delete() -> None:
        with backend.transaction():
            backend.update(LEDGER, Cond("seq", "eq", 2), {"note": None})
            backend.delete(LEDGER, TRUE)

    with pytest.raises(BackendError, match="append-only"):
        erase_then_delete()
    assert backend.select(LEDGER, TRUE, [OrderBy("seq")]) == rows  # nothing changed
    assert backend.update(LEDGER, Cond("seq", "eq", 99), {"body": "no row"}) == []
    erased_at = datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    erased = backend.update(LEDGER, first, {"note": None, "tags": None, "erased_at": erased_at})
    assert erased == [{**rows[0], "note": None, "tags": None, "erased_at": erased_at}]
    assert backend.purge(LEDGER, 2) == 2
    assert [r["seq"] for r in backend.select(LEDGER, TRUE)] == [3]
    assert backend.purge(LEDGER, 2) == 0
    backend.insert(LEDGER, {**rows[0], "seq": 4})  # appending goes on
    assert backend.count(LEDGER, TRUE) == 2


# ----------------------------------------------------------------------------- update_and_insert

#: The kit's counted parents and their numbered children (a session and its turns).
PARENTS: Final = TableSpec(
    name="kit_parents",
    columns=(
        Column(name="id", kind="id"),
        Column(name="owner", kind="key", max_length=50),
        Column(name="hits", kind="int"),
        Column(name="total", kind="decimal"),
        Column(name="closed", kind="bool"),
    ),
)

CHILDREN: Final = TableSpec(
    name="kit_children",
    columns=(
        Column(name="id", kind="id"),
        Column(name="parent_id", kind="id"),
        Column(name="owner", kind="key", max_length=50),
        Column(name="number", kind="int"),
        Column(name="note", kind="text", nullable=True),
    ),
    unique=(Unique(("parent_id", "number")),),
)

#: A child's columns taken from its parent once counted.
_FROM_PARENT: Final = {"owner": "owner", "number": "hits"}


def _update_and_insert(store: Store) -> Callable[..., Row | None]:
    """The backend's ``update_and_insert`` where declared; else the reference the core runs
    over its update and insert (so this contract holds on every backend)."""
    backend = store.backend
    backend.create_tables([PARENTS, CHILDREN])
    backend.delete(CHILDREN, TRUE)  # what an earlier run of the kit left
    backend.delete(PARENTS, TRUE)
    if "update_and_insert" not in capabilities_of(backend):
        return functools.partial(update_and_insert_reference, backend)
    assert isinstance(backend, UpdateAndInsert), "declares update_and_insert without the method"
    return backend.update_and_insert


def _count_on(parent: str, amount: str = "0") -> tuple[Expr, dict[str, Increment]]:
    where = And((Cond("id", "eq", parent), Cond("closed", "eq", False)))
    return where, {"hits": Increment(1), "total": Increment(Decimal(amount))}


def _child(parent: str, n: int, note: str | None = None) -> Row:
    # owner and number are placeholders: update_and_insert sets them from the parent.
    return {"id": _uid(n), "parent_id": parent, "owner": "?", "number": 0, "note": note}


def test_capability_update_and_insert_changes_both_or_neither(store: Store) -> None:
    """update_and_insert: both land, copied values included, or neither (no match, failure)."""
    call = _update_and_insert(store)
    backend = store.backend
    parent: Row = {"id": _uid(100), "owner": "ann", "hits": 0, "total": Decimal(0), "closed": False}
    closed: Row = {**parent, "id": _uid(101), "closed": True}
    backend.insert_many(PARENTS, [parent, closed])
    where, changes = _count_on(parent["id"], "0.25")
    first = call(PARENTS, where, changes, CHILDREN, _child(parent["id"], 1, "é"), _FROM_PARENT)
    expected = {**_child(parent["id"], 1, "é"), "owner": "ann", "number": 1}
    assert first == expected
    assert backend.get(CHILDREN, _uid(1)) == expected
    second = call(PARENTS, where, changes, CHILDREN, _child(parent["id"], 2), _FROM_PARENT)
    assert second is not None
    assert second["number"] == 2
    assert backend.get(PARENTS, parent["id"]) == {**parent, "hits": 2, "total": Decimal("0.5")}
    kept = backend.select(PARENTS, TRUE, [OrderBy("id")])
    where_closed, _ = _count_on(closed["id"])
    refused = call(PARENTS, where_closed, changes, CHILDREN, _child(closed["id"], 3), _FROM_PARENT)
    assert refused is None
    with pytest.raises(AlreadyExists):  # the child's id is taken: the count is undone
        call(PARENTS, where, changes, CHILDREN, _child(parent["id"], 1), _FROM_PARENT)
    with aborted(store.transaction()):
        call(PARENTS, where, changes, CHILDREN, _child(parent["id"], 4), _FROM_PARENT)
    assert backend.select(PARENTS, TRUE, [OrderBy("id")]) == kept
    assert [r["id"] for r in backend.select(CHILDREN, TRUE, [OrderBy("id")])] == [_uid(1), _uid(2)]


def test_capability_update_and_insert_counts_every_racing_call(store: Store) -> None:
    """update_and_insert: racing threads lose no increment; children are numbered 1..n once."""
    call = _update_and_insert(store)
    parent: Row = {"id": _uid(200), "owner": "bo", "hits": 0, "total": Decimal(0), "closed": False}
    store.backend.insert(PARENTS, parent)
    where, changes = _count_on(parent["id"], "0.000001")
    threads, each = 8, 6

    def work(t: int) -> None:
        for i in range(each):
            row = _child(parent["id"], 1000 + t * each + i)
            call(PARENTS, where, changes, CHILDREN, row, _FROM_PARENT)

    errors = race(threads, work)
    assert errors == [], f"racing calls failed: {errors[:3]!r}"
    stored = store.backend.get(PARENTS, parent["id"])
    assert stored is not None
    assert (stored["hits"], stored["total"]) == (threads * each, Decimal("0.000048")), (
        "increments were lost: the update is not one atomic step with the insert"
    )
    numbers = sorted(r["number"] for r in store.backend.select(CHILDREN, TRUE))
    assert numbers == list(range(1, threads * each + 1))


def test_capability_update_and_insert_many_changes_all_or_none(store: Store) -> None:
    """update_and_insert_many: the update and every row land, in order, or nothing does."""
    backend = _declared(store, "update_and_insert_many")
    assert isinstance(backend, UpdateAndInsertMany), "declares it without the method"
    _update_and_insert(store)  # the kit's tables, emptied
    parent: Row = {"id": _uid(300), "owner": "cy", "hits": 0, "total": Decimal(0), "closed": False}
    closed: Row = {**parent, "id": _uid(301), "closed": True}
    backend.insert_many(PARENTS, [parent, closed])
    where, changes = _count_on(parent["id"], "0.5")
    # Children of one call share the copied number: each names another parent_id.
    rows = [_child(_uid(n + 10), n, note) for n, note in ((302, "é"), (303, None), (304, "x"))]
    made = backend.update_and_insert_many(PARENTS, where, changes, CHILDREN, rows, _FROM_PARENT)
    expected = [{**row, "owner": "cy", "number": 1} for row in rows]
    assert made == ({**parent, "hits": 1, "total": Decimal("0.5")}, expected)
    assert backend.select(CHILDREN, TRUE, [OrderBy("id")]) == expected
    one = backend.update_and_insert_many(
        PARENTS, where, changes, CHILDREN, [_child(parent["id"], 305)], _FROM_PARENT
    )
    stored = backend.get(PARENTS, parent["id"])
    assert stored == {**parent, "hits": 2, "total": Decimal(1)}
    assert one == (stored, [{**_child(parent["id"], 305), "owner": "cy", "number": 2}])
    kept = (backend.select(PARENTS, TRUE, [OrderBy("id")]),
            backend.select(CHILDREN, TRUE, [OrderBy("id")]))  # fmt: skip
    where_closed, _ = _count_on(closed["id"])
    refused = backend.update_and_insert_many(
        PARENTS, where_closed, changes, CHILDREN, [_child(closed["id"], 306)], _FROM_PARENT
    )
    assert refused is None
    taken = [_child(parent["id"], 307), _child(_uid(9), 302)]  # the second's id is taken
    with pytest.raises(AlreadyExists):
        backend.update_and_insert_many(PARENTS, where, changes, CHILDREN, taken, _FROM_PARENT)
    with aborted(store.transaction()):
        backend.update_and_insert_many(
            PARENTS, where, changes, CHILDREN, [_child(parent["id"], 308)], _FROM_PARENT
        )
    assert (backend.select(PARENTS, TRUE, [OrderBy("id")]),
            backend.select(CHILDREN, TRUE, [OrderBy("id")])) == kept  # fmt: skip


# ----------------------------------------------------------------------------- upsert_returning


def test_capability_upsert_returning_gives_the_columns_asked_for(store: Store) -> None:
    """upsert_returning: upsert(..., returning=cols) gives those columns of the row as stored."""
    backend = _declared(store, "upsert_returning")
    assert isinstance(backend, UpsertReturning), "declares upsert_returning without returning"
    backend.create_tables([CHILDREN])
    backend.delete(CHILDREN, TRUE)  # what an earlier run of the kit left
    key = ("parent_id", "number")
    row: Row = {"id": _uid(300), "parent_id": _uid(9), "owner": "x", "number": 7, "note": "a"}
    first = backend.upsert(CHILDREN, key, row, {"note": "b"}, returning=("id", "note"))
    assert first == {"id": row["id"], "note": "a"}
    again = {**row, "id": _uid(301)}
    second = backend.upsert(CHILDREN, key, again, {"note": "b"}, returning=("note", "number", "id"))
    assert second == {"note": "b", "number": 7, "id": row["id"]}
    assert backend.upsert(CHILDREN, key, again, {"note": None}) == {**row, "note": None}
    assert backend.select(CHILDREN, TRUE) == [{**row, "note": None}]


# ----------------------------------------------------------------------------- select_columns

#: Every kind, nullable and not, and two NOT NULL datetimes (equal in some rows).
COLUMNS: Final = TableSpec(
    name="kit_columns",
    columns=(
        Column(name="id", kind="id"),
        Column(name="n", kind="int"),
        Column(name="label", kind="text", nullable=True),
        Column(name="score", kind="float", nullable=True),
        Column(name="amount", kind="decimal", nullable=True),
        Column(name="flag", kind="bool"),
        Column(name="made", kind="datetime"),
        Column(name="changed", kind="datetime"),
        Column(name="gone", kind="datetime", nullable=True),
        Column(name="tags", kind="list"),
        Column(name="data", kind="json"),
        Column(name="extra", kind="json", nullable=True),
        Column(name="v", kind="vector", nullable=True),
    ),
)


def _columns_row(n: int) -> Row:
    made = datetime(2024, 1, 1, 12, 0, n, n * 7, tzinfo=UTC)
    return {
        "id": _uid(400 + n),
        "n": n % 4,
        "label": None if n % 3 == 0 else f"é{n}",
        "score": None if n % 2 else n / 8,
        "amount": None if n % 5 == 0 else Decimal(n) / 1000,
        "flag": n % 2 == 0,
        "made": made,
        "changed": made if n % 4 else made.replace(microsecond=999_999),
        "gone": None if n % 3 else made,
        "tags": [] if n % 2 else ["b", "a", "b"][: n % 4],
        "data": {} if n % 3 == 1 else {"k": [n, 1.0, True, None], "z": {"y": "é"}},
        "extra": None if n % 2 else [],
        "v": None if n % 2 else [0.5, -float(n)],
    }


def test_capability_select_columns_gives_selects_rows_a_column_each(store: Store) -> None:
    """select_columns (kit_columns): select's rows a column each, in the order asked."""
    # Every kind, NULLs, equal datetimes, slices and no rows; lists and dicts are new.
    backend = _declared(store, "select_columns")
    assert isinstance(backend, SelectColumns), "declares select_columns without the method"
    backend.create_tables([COLUMNS])
    backend.delete(COLUMNS, TRUE)  # what an earlier run of the kit left
    backend.insert_many(COLUMNS, [_columns_row(n) for n in range(9)])
    names = [c.name for c in COLUMNS.columns]
    asked = (names, names[::-1], ["changed", "made", "id"], ["data"])
    order = (OrderBy("n", desc=True), OrderBy("id"))
    reads: tuple[tuple[Expr, int | None, int], ...] = (
        (TRUE, None, 0),
        (Cond("n", "gt", 1), None, 0),
        (TRUE, 4, 3),
        (Cond("n", "eq", 99), None, 0),
    )
    for columns in asked:
        for where, limit, offset in reads:
            rows = backend.select(COLUMNS, where, order, limit, offset)
            got = backend.select_columns(COLUMNS, columns, where, order, limit, offset)
            want = [[row[name] for row in rows] for name in columns]
            assert canon([list(values) for values in got]) == canon(want), (columns, where)
    (data, tags) = backend.select_columns(COLUMNS, ["data", "tags"], TRUE, [OrderBy("id")])
    data[0]["k"].append("mine")
    tags[2].append("mine")
    again = backend.select(COLUMNS, TRUE, [OrderBy("id")])
    assert (again[0]["data"], again[2]["tags"]) == (_columns_row(0)["data"], ["b", "a"])


def test_capability_migrations_keep_the_schema_current(store: Store) -> None:
    """Once open, a migrations backend has nothing pending and creates/drops frozen tables."""
    migrations = cast(Migrations, _declared(store, "migrations"))
    backend = store.backend
    assert store.migrate() == []
    status = store.migration_status()
    assert status, "a backend with migrations lists them"
    assert all(entry["applied"] for entry in status), status
    assert migrations.missing_tables(list(store.tables.values())) == []
    spec = TableSpec(
        name=f"kit_migrated_{secrets.token_hex(4)}",
        columns=(Column(name="id", kind="id"), Column(name="code", kind="key")),
        unique=(Unique(("code",)),),
    )
    assert migrations.missing_tables([spec]) == [spec.name]
    migrations.create_spec_tables([spec])
    try:
        assert migrations.missing_tables([spec]) == []
        migrations.create_spec_tables([spec])  # again: nothing to do
        row = {"id": "kit-1", "code": "a"}
        backend.insert(spec, row)
        assert backend.select(spec, TRUE) == [row]
        with pytest.raises(AlreadyExists):
            backend.insert(spec, {"id": "kit-2", "code": "a"})
    finally:
        migrations.drop_spec_tables([spec])
    assert migrations.missing_tables([spec]) == [spec.name]


class _Writes:
    def __init__(self) -> None:
        self.ops: list[Any] = []

    @clonestore.hookimpl
    def clonestore_before_write(self, store: Store, op: Any) -> None:
        self.ops.append(op)


def _names_owner(where: Any, owner: str) -> bool:
    """Whether ``where`` is ``user_id == owner`` or a conjunction holding it."""
    if isinstance(where, And):
        return any(_names_owner(item, owner) for item in where.items)
    return isinstance(where, Cond) and (where.column, where.op, where.value) == (
        "user_id", "eq", owner
    )  # fmt: skip


def test_capability_owner_routed_writes_by_id_name_the_owner(store_factory: StoreFactory) -> None:
    """owner_routed: outside for_user, every write by id of an owned row names its owner."""
    writes = _Writes()
    store = store_factory(plugins=[writes])
    _declared(store, "owner_routed")
    user = store.users.create(email=f"routed-{secrets.token_hex(4)}@example.com", name="R")
    voice = store.voice_models.create(user_id=user.id, name="v", provider="p")
    session = store.sessions.create(user_id=user.id)
    memory = store.memories.create(user_id=user.id, content="m", embedding=[1.0, 0.0])
    writes.ops.clear()
    store.voice_models.activate(voice.id)
    store.voice_models.update(voice.id, name="v2")
    store.sessions.update_state(session.id, "listening")
    turn = store.sessions.add_turn(session.id, llm_latency_ms=5)
    store.turns.hard_delete(turn.id)
    store.sessions.end(session.id)
    store.memories.delete(memory.id)
    store.memories.restore(memory.id)
    store.memories.hard_delete(memory.id)
    by_id = [op for op in writes.ops if op.kind in ("update", "delete") and op.key is not None]
    assert {op.table.name for op in by_id} >= {"voice_models", "sessions", "turns", "memories"}
    for op in by_id:
        assert _names_owner(op.where, user.id), (op.action, op.where)


def test_capability_row_security_calls_the_backend_as_the_views_user(store: Store) -> None:
    """row_security: a view's backend calls run as its user, unscoped ones as None."""
    backend = _declared(store, "row_security")
    assert isinstance(backend, RowSecurity)
    ada = store.users.create(email=f"acting-{secrets.token_hex(4)}@example.com", name="A")
    session = store.sessions.create(user_id=ada.id)
    seen: list[str | None] = []
    target: Any = vars(backend).get("_target", backend)  # the backend itself under open_async
    select = target.select

    def recorded(*args: Any, **kwargs: Any) -> list[Row]:
        seen.append(acting_user())
        rows: list[Row] = select(*args, **kwargs)
        return rows

    target.select = recorded
    try:
        unscoped = store.sessions.find_many(user_id=ada.id)
        assert seen == [None]
        seen.clear()
        view = store.for_user(ada.id)
        assert view.sessions.find_many() == unscoped == [store.sessions.get(session.id)]
        with view.transaction():
            assert view.sessions.find_many() == unscoped
        assert set(seen) == {ada.id}
    finally:
        del target.select
    assert acting_user() is None


def test_capability_time_partitions_remove_what_row_by_row_removes(store: Store) -> None:
    """time_partitions: a removal by time removes what removing row by row would."""
    backend = _declared(store, "time_partitions")
    assert isinstance(backend, TimePartitions)
    turns = store.turns.spec
    assert turns.partition_by == "created_at"
    ada = store.users.create(email=f"parts-{secrets.token_hex(4)}@example.com", name="A")
    # History over four months (imported), then today's turns.
    months = [datetime(2020, month, 10, tzinfo=UTC) for month in (1, 2, 3, 4)]
    session = store.sessions.create(user_id=ada.id, created_at=months[0], updated_at=months[0])
    made = [store.sessions.add_turn(session.id, user_transcript="old", created_at=at)
            for at in months]  # fmt: skip
    made += [store.sessions.add_turn(session.id, user_transcript=f"t{i}") for i in range(2)]
    if "partitions" in {task.name for task in store.maintenance_tasks()}:
        assert store.maintain(tasks=["partitions"]).ok  # the past months get partitions
    assert backend.partition_bound(store.users.spec, "created_at", months[3]) is None
    for before in (months[0], months[3], datetime(2100, 1, 1, tzinfo=UTC)):
        bound = backend.partition_bound(turns, "created_at", before)
        assert bound is None or bound <= before, (before, bound)
    # Under a bound inside March: January and February whole, March's row by row.
    cutoff = datetime(2020, 3, 20, tzinfo=UTC)
    under = Cond("created_at", "lt", cutoff)
    expected_left = sorted(turn.id for turn in made if turn.created_at >= cutoff)
    assert backend.delete(turns, under) == len(made) - len(expected_left)
    left = backend.select(turns, Cond("session_id", "eq", session.id), (OrderBy("id"),), None)
    assert sorted(row["id"] for row in left) == expected_left
    assert backend.count(turns, under) == 0
    # Writing goes on, into the months removed too.
    again = store.sessions.add_turn(session.id, user_transcript="again", created_at=months[1])
    assert store.turns.get(again.id).created_at == months[1]
