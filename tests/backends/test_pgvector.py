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

import clonestore
from clonestore import AlreadyExists, ConfigurationError, ValidationError
from clonestore.spi import TRUE, Column, OrderBy, TableSpec
from clonestore.vectors import nearest_reference


def _fresh(server_url: str) -> Iterator[str]:
    from tests.conftest import _connect, _with_database

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
            "'memories'::regclass AND attname = 'embedding_vec' AND NOT attisdropped"
        )
        row = cur.fetchone()
        return None if row is None else str(row[0])
    finally:
        conn.close()


def test_pgvector_path_keeps_float64_values_and_settles_exactly(pgvector_fresh: str) -> None:
    """With pgvector, health says so, values read back unchanged, results equal the reference."""
    rng = random.Random(3)
    with clonestore.open(pgvector_fresh) as store:
        assert store.health()["vector_search"]["engine"] == "pgvector"
        assert _column_type(pgvector_fresh) == "vector"
        user = store.users.create(email="p@example.com", name="P")
        vectors = [[rng.gauss(0, 1) + 1e-12 * i for i in range(16)] for _ in range(200)]
        added = [store.memories.add(user.id, f"m{i}", v) for i, v in enumerate(vectors)]
        assert [list(store.memories.get(m.id).embedding) for m in added] == vectors
        rows = [{"id": m.id, "embedding": list(m.embedding)} for m in added]
        for metric in ("cosine", "l2", "ip"):
            query = [rng.gauss(0, 1) for _ in range(16)]
            got = store.memories.similar(user.id, query, limit=10, metric=metric)
            want = nearest_reference(rows, "embedding", query, metric, 10)
            assert [(r.memory.id, r.score) for r in got] == [(r["id"], s) for r, s in want]


def test_without_pgvector_search_runs_in_sql_and_says_so(
    plain_fresh: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A server without pgvector (CI's): health and a log line say so; results equal the
    reference, and the statement returns candidates only, never every row. (On a server
    with pgvector, as pgserver's when no server is configured, the test drops the pgvector
    copy the migration made, which is what a database migrated before pgvector has.)"""
    with clonestore.open(plain_fresh, create_tables=False) as store:
        store.migrate()
        if store.health()["pgvector"] is not None:
            conn = psycopg2.connect(plain_fresh)
            conn.autocommit = True
            conn.cursor().execute("ALTER TABLE memories DROP COLUMN IF EXISTS embedding_vec")
            conn.close()
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
        fetched: list[int] = []
        execute = backend._execute

        def counting(sql: str, params: Any, mode: int) -> Any:
            out = execute(sql, params, mode)
            if "unnest" in sql:
                fetched.append(len(out))
            return out

        backend.__dict__["_execute"] = counting
        query = [rng.gauss(0, 1) for _ in range(8)]
        got = store.memories.similar(user.id, query, limit=5)
        rows = [{"id": m.id, "embedding": list(m.embedding)} for m in added]
        want = nearest_reference(rows, "embedding", query, "cosine", 5)
        assert [(r.memory.id, r.score) for r in got] == [(r["id"], s) for r, s in want]
        assert fetched
        assert max(fetched) < 100


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


def test_options_are_checked() -> None:
    """HNSW needs a dimension; bad values are ConfigurationErrors naming the option."""
    url = "postgresql://nobody@127.0.0.1:1/none"
    with pytest.raises(ConfigurationError, match="needs vector_dimension"):
        clonestore.open(url, vector_index="hnsw", create_tables=False)
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
        execute = backend._execute

        def explaining(sql: str, params: Any, mode: int) -> Any:
            if sql.startswith("SELECT") and '"distance"' in sql:
                plan = execute("EXPLAIN " + sql, params, 2)
                plans.append("\n".join(str(row[0]) for row in plan))
            return execute(sql, params, mode)

        backend.__dict__["_execute"] = explaining
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
                "v": None if null else [rng.gauss(0, 1), 1e300, -5e-324, 0.0][: 1 + i % 4],
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
        execute = backend._execute

        def recording(sql: str, params: Any, mode: int) -> Any:
            statements.append(sql)
            return execute(sql, params, mode)

        backend.__dict__["_execute"] = recording
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
