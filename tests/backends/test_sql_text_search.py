"""The SQL backends search text in the engine (capability ``text_search``): from the
text index (migration 0010) where it covers the search, else from the id and searched
fields of the rows matching ``where``; only the best ``limit`` rows come back whole;
the answer is the core reference's. Every write keeps the index exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clonestore_peewee.sql._backend import ALL
from clonestore_peewee.sql._text_index import INDEXED, OWNER, entries
from hypothesis import given, settings
from hypothesis import strategies as st

import clonestore
from clonestore.query import Cond
from clonestore.schema import removal_order
from clonestore.spi import capabilities_of
from clonestore.testing.wiping import empty_table
from clonestore.text import bm25, bm25_scores, parse_query, search_reference

SQL = ("sqlite", "postgres", "mariadb")


@pytest.fixture(params=SQL, ids=SQL)
def clonestore_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The SQL engines."""
    from tests.matrix import _url

    return _url(request.param, request, tmp_path)


def test_sql_text_search_reads_no_whole_rows_but_the_best(store: clonestore.Store) -> None:
    """A search declares text_search, reads the user's postings and statistics from the
    text index (no row of memories; PostgreSQL scores in the engine and returns only the
    best ids) and, whole, only the rows it returns; same records and scores as the
    reference."""
    backend: Any = store.backend
    assert "text_search" in capabilities_of(backend)
    alice = store.users.create(email="alice@example.com", name="Alice")
    bob = store.users.create(email="bob@example.com", name="Bob")
    words = ["red car", "red red car", "a blue car", "red bicycle", "car park red", "green"]
    for i in range(30):
        store.memories.add(alice.id, f"{words[i % len(words)]} {i}")
        store.memories.add(bob.id, f"red car {i}")
    fetched: list[tuple[str, int]] = []
    original = backend.execute

    def execute(sql: str, params: Any, mode: int) -> Any:
        result = original(sql, params, mode)
        if mode == ALL:
            fetched.append((sql, len(result)))
        return result

    backend.execute = execute
    try:
        found = store.memories.search("red car", limit=3, where={"user_id": alice.id})
    finally:
        del backend.execute
    rows = store.backend.select(store.memories.spec, store.memories._where({"user_id": alice.id}))
    expected = search_reference(rows, ["content"], parse_query("red car"), 3)
    assert [(f.record.id, f.score) for f in found] == [(r["id"], s) for r, s in expected]
    assert len(found) == 3
    whole = [n for sql, n in fetched if "metadata" in sql]
    assert whole == [3]  # the best rows, whole, once
    narrow = [(sql, n) for sql, n in fetched if "metadata" not in sql]
    if backend.dialect.name == "postgresql":
        # The statistics, then the engine's scores of the best rows (only those back).
        assert len(narrow) == 2
        assert narrow[1][1] == 3
    else:
        assert len(narrow) == 1
    for sql, _ in narrow:
        assert "text_index_terms" in sql
        assert "content" not in sql


def test_sql_text_search_scores_are_the_references_bit_for_bit(store: clonestore.Store) -> None:
    """Rows of many lengths and term counts, one to three terms, one owner or all, a
    small and a large limit (ties by id): the same ids and floats as the reference
    (PostgreSQL computes them in the engine)."""
    alice = store.users.create(email="alice@example.com", name="Alice")
    bob = store.users.create(email="bob@example.com", name="Bob")
    words = ["red", "car", "blue", "sky", "tree", "stone"]
    for i in range(80):
        text = " ".join(words[(i * j + j * j) % len(words)] for j in range(1 + i % 23))
        store.memories.add(alice.id if i % 3 else bob.id, text)
    spec = store.memories.spec
    for query in ("red", "car red", "sky tree red", "stone"):
        for where in ({"user_id": alice.id}, {}):
            rows = store.backend.select(spec, store.memories._where(where))
            for limit in (3, 100):
                found = store.memories.search(query, limit=limit, where=where)
                expected = search_reference(rows, ["content"], parse_query(query), limit)
                assert [(f.record.id, f.score) for f in found] == [
                    (r["id"], s) for r, s in expected
                ]


def test_sql_text_search_without_the_index_reads_the_searched_fields(
    store: clonestore.Store,
) -> None:
    """A condition the index cannot answer (beyond owner and liveness) is answered by the
    reference over the id and searched field of the matching rows: the same answer."""
    backend: Any = store.backend
    alice = store.users.create(email="alice@example.com", name="Alice")
    for i, text in enumerate(["red car", "red red car", "blue car", "red car park"]):
        store.memories.add(alice.id, text, importance=0.5 if i % 2 else 0.9)
    where = {"user_id": alice.id, "importance__gt": 0.6}
    fetched: list[str] = []
    original = backend.execute

    def execute(sql: str, params: Any, mode: int) -> Any:
        fetched.append(sql)
        return original(sql, params, mode)

    backend.execute = execute
    try:
        found = store.memories.search("red car", limit=3, where=where)
    finally:
        del backend.execute
    rows = store.backend.select(store.memories.spec, store.memories._where(where))
    expected = search_reference(rows, ["content"], parse_query("red car"), 3)
    assert [(f.record.id, f.score) for f in found] == [(r["id"], s) for r, s in expected]
    assert [f.record.content for f in found] == ["red car"]
    assert not any("text_index" in sql for sql in fetched)


def _index(store: clonestore.Store) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """The text index as stored: its rows and its terms."""
    backend: Any = store.backend
    rows = backend.execute("SELECT tbl, row_id, owner, tokens FROM text_index_rows", (), ALL)
    terms = backend.execute(
        "SELECT tbl, term, owner, row_id, tf, tokens FROM text_index_terms", (), ALL
    )
    return {tuple(r) for r in rows}, {tuple(t) for t in terms}


def _expected(store: clonestore.Store) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """The text index the live rows call for, built from scratch."""
    rows: set[tuple[Any, ...]] = set()
    terms: set[tuple[Any, ...]] = set()
    for name, fields in INDEXED.items():
        spec = store.tables[name]
        for row in store.backend.select(spec, Cond("deleted_at", "isnull", True)):
            length, counts = entries(row, fields)
            rows.add((name, row["id"], row[OWNER], length))
            terms.update((name, t, row[OWNER], row["id"], tf, length) for t, tf in counts.items())
    return rows, terms


def _exact(store: clonestore.Store) -> bool:
    actual, expected = _index(store), _expected(store)
    assert actual == expected
    return bool(expected[0])


def test_every_write_keeps_the_text_index_exact(store: clonestore.Store, tmp_path: Path) -> None:
    """create, create_many, update, update_many, upsert, soft delete, restore, hard
    delete, a rolled-back write, erasure and dump/load each leave the text index exactly
    what the live rows call for (a term longer than the key column is stored hashed)."""
    backend: Any = store.backend
    assert backend.text_index.ready
    ada = store.users.create(email="ada@example.com", name="Ada")
    bob = store.users.create(email="bob@example.com", name="Bob")
    docs = store.documents
    first = docs.create(user_id=ada.id, filename="a.txt", text_content="Red car", tags=["x y"])
    assert _exact(store)
    long = "z" * 200
    many = docs.create_many(
        {"user_id": bob.id, "filename": f"b{i}.md", "text_content": f"blue {i} {long}"}
        for i in range(3)
    )
    memory = store.memories.add(ada.id, "a red, red memory")
    assert _exact(store)
    docs.update(first.id, text_content="green car, green")
    docs.update(first.id, size_bytes=2)  # no searched field: nothing to re-index
    assert _exact(store)
    docs.update_many({"user_id": bob.id}, tags=["tagged now"])
    assert _exact(store)
    docs.upsert(many[0].id, user_id=bob.id, filename="replaced.txt", text_content="new words")
    docs.upsert("00000000-0000-4000-8000-000000000001", user_id=ada.id, filename="new.txt")
    assert _exact(store)
    docs.delete(many[1].id)
    store.memories.delete(memory.id)
    assert _exact(store)
    docs.restore(many[1].id)
    assert _exact(store)
    docs.hard_delete(many[2].id)
    assert _exact(store)
    before = _index(store)

    def rolled_back() -> None:
        with store.transaction():
            docs.update(first.id, text_content="rolled back")
            docs.create(user_id=ada.id, filename="gone.txt", text_content="never")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        rolled_back()
    assert _index(store) == before
    assert store.documents.search("green", where={"user_id": ada.id})[0].record.id == first.id
    dumped = tmp_path / "dump.jsonl"
    store.dump(dumped)
    store.erase_user(bob.id)
    assert _exact(store)
    with backend.transaction():
        for spec in removal_order(store.tables.values()):
            empty_table(backend, spec)
    assert _index(store) == (set(), set())
    store.load(dumped)
    assert _exact(store)
    assert [f.record.id for f in store.documents.search("green", where={"user_id": ada.id})] == [
        first.id
    ]


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.dictionaries(st.sampled_from("abc"), st.integers(0, 50)), st.integers(0, 300)),
        max_size=8,
    ),
    extra=st.integers(0, 1000),
    average=st.floats(0.0, 500.0),
)
def test_bm25_scores_are_bm25s_floats(
    rows: list[tuple[dict[str, int], int]], extra: int, average: float
) -> None:
    """The index's scorer gives bm25's floats, bit for bit."""
    frequency = {t: 1 + sum(1 for tfs, _ in rows if tfs.get(t)) for t in "abc"}
    total = len(rows) + extra + 1
    terms = ("c", "a", "b")
    expected = [bm25(tfs, length, frequency, total, average, terms) for tfs, length in rows]
    assert bm25_scores(rows, frequency, total, average, terms) == expected


def test_racing_writes_of_one_row_keep_the_text_index_exact(store: clonestore.Store) -> None:
    """Threads upserting and updating the same document at once (each write waits for the
    row's lock, then re-indexes it from the latest committed entries, not from its own
    snapshot's) leave the index exactly what the row calls for."""
    import threading

    ada = store.users.create(email="ada@example.com", name="Ada")
    doc = store.documents.create(user_id=ada.id, filename="a.txt", text_content="start")
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for i in range(5):
                with store.transaction():
                    store.documents.get(doc.id)  # an earlier read: the snapshot's start
                    if (k + i) % 2:
                        store.documents.upsert(doc.id, user_id=ada.id, filename=f"t{k} {i}.txt")
                    else:
                        store.documents.update(doc.id, text_content=f"writer {k} round {i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e for e in errors if not isinstance(e, clonestore.Conflict)] == []
    assert _exact(store)
