"""The Citus layout (``?layout=citus``, docs/scale-out.md) on plain PostgreSQL: the key
shapes Citus needs, the conversion of an existing database, email uniqueness through
``user_email_keys`` (duplicates impossible, concurrent ones included), and writes by id
that name their owner (checked in the statements and their ``EXPLAIN``).

The whole contract kit also runs on this layout (``[postgres-citus-layout]`` in
tests/matrix.py); with ``CLONESTORE_TEST_CITUS_URL`` it runs on a real Citus cluster too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest

import clonestore
from clonestore import AlreadyExists
from clonestore.spi import capabilities_of
from clonestore.testing.contract._builders import race
from tests.matrix import with_layout
from tests.test_migrations import _fresh_postgres

OWNED = ("voice_models", "face_models", "sessions", "turns", "documents", "memories")
DISTRIBUTION = {"users": "id", "user_email_keys": "email_key", **dict.fromkeys(OWNED, "user_id")}


@pytest.fixture
def fresh(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (no layout in the URL)."""
    yield from _fresh_postgres(request.getfixturevalue("postgres_server_url"))


def _query(url: str, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url.split("?")[0], connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


_UNIQUE_INDEXES = """
SELECT t.relname, i.relname, ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY
       AS k(n, o) JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
WHERE x.indisunique AND t.relname = ANY(%s)
"""


def _unique_keys(url: str) -> dict[tuple[str, str], list[str]]:
    rows = _query(url, _UNIQUE_INDEXES, (list(DISTRIBUTION),))
    return {(table, index): list(columns) for table, index, columns in rows}


def test_every_unique_key_includes_the_distribution_column(fresh: str) -> None:
    """On the layout every unique index of a distributed table includes its distribution
    column (what create_distributed_table demands); owned tables lead with user_id."""
    clonestore.open(with_layout(fresh)).close()
    keys = _unique_keys(fresh)
    assert ("users", "uq_users_email_key") not in keys
    for (table, index), columns in keys.items():
        assert DISTRIBUTION[table] in columns, (table, index, columns)
    for table in OWNED:
        assert keys[(table, f"{table}_pkey")] == ["user_id", "id"]
    assert keys[("turns", "uq_turns_session_id_turn_index")] == [
        "user_id", "session_id", "turn_index"
    ]  # fmt: skip
    assert keys[("user_email_keys", "user_email_keys_pkey")] == ["email_key"]


def test_an_existing_database_is_converted_once(fresh: str) -> None:
    """A plain database opened (or migrated) with the layout is converted in place, its
    live users' email keys copied; converting again changes nothing."""
    with clonestore.open(fresh) as plain:
        ann = plain.users.create(email="Ann@Example.com", name="Ann")
        gone = plain.users.create(email="gone@example.com", name="Gone")
        plain.users.delete(gone.id)
        session = plain.sessions.create(user_id=ann.id)
        plain.sessions.add_turn(session.id, llm_latency_ms=3)
    with clonestore.open(with_layout(fresh)) as store:
        assert _query(fresh, "SELECT email_key, user_id FROM user_email_keys") == [
            ("ann@example.com", ann.id)
        ]
        assert store.backend.apply_layout() == []  # type: ignore[attr-defined]
        assert store.users.find_by_email("ANN@example.com") == ann
        with pytest.raises(AlreadyExists):
            store.users.create(email="ann@example.com", name="Twin")
        assert store.users.create(email="gone@example.com", name="New").name == "New"
        assert store.sessions.get_with_turns(session.id).turns[0].llm_latency_ms == 3


def _live_keys(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    keys = _query(url, "SELECT email_key, user_id FROM user_email_keys ORDER BY 1")
    live = _query(url, "SELECT email_key, id FROM users WHERE deleted_at IS NULL ORDER BY 1")
    return keys, live


def test_duplicate_emails_are_impossible(fresh: str) -> None:
    """Create, update, restore, upsert and create_many cannot give two live users one
    email; soft delete and erasure free it; the lookup table is exactly the live users'."""
    with clonestore.open(with_layout(fresh)) as store:
        ann = store.users.create(email="ann@example.com", name="Ann")
        bob = store.users.create(email="bob@example.com", name="Bob")
        for attempt in (
            lambda: store.users.create(email="ANN@example.com", name="X"),
            lambda: store.users.update(bob.id, email="Ann@Example.com"),
            lambda: store.users.upsert("new", email="ann@example.com", name="X"),
            lambda: store.users.upsert(bob.id, email="ann@example.com", name="Bob"),
            lambda: store.users.create_many(
                [{"email": "c@example.com", "name": "C"}, {"email": "c@example.com", "name": "D"}]
            ),
        ):
            with pytest.raises(AlreadyExists) as caught:
                attempt()
            assert "email" in str(caught.value), str(caught.value)
        assert store.users.find_by_email("bob@example.com") == bob
        store.users.update(ann.id, email="ann2@example.com")
        assert store.users.find_by_email("ann@example.com") is None
        store.users.create(email="ann@example.com", name="Second Ann")
        store.users.delete(bob.id)
        bob2 = store.users.create(email="bob@example.com", name="Bob 2")
        with pytest.raises(AlreadyExists):
            store.users.restore(bob.id)
        store.erase_user(bob2.id)
        store.users.restore(bob.id)
        store.erase_user(bob.id)
        assert store.users.find_by_email("bob@example.com") is None
        keys, live = _live_keys(fresh)
        assert keys == live
        assert len(keys) == 2


def test_concurrent_creates_of_one_email_admit_one(fresh: str) -> None:
    """Eight threads creating users with one email (in different cases): one succeeds."""
    with clonestore.open(with_layout(fresh), pool_size=8) as store:
        store.users.count()
        errors = race(
            8,
            lambda n: store.users.create(
                email=f"{'SAME' if n % 2 else 'same'}@example.com", name="S"
            ),
        )
        assert len(errors) == 7, errors  # one created
        assert all(isinstance(error, AlreadyExists) for error in errors), errors
        keys, live = _live_keys(fresh)
        assert keys == live
        assert len(keys) == 1


class _Statements:
    """The statements a backend runs, with their parameters."""

    def __init__(self, backend: Any) -> None:
        self.seen: list[tuple[str, Any]] = []
        self._execute = backend.execute
        backend.execute = self

    def __call__(self, sql: str, params: Any, mode: int) -> Any:
        self.seen.append((sql, params))
        return self._execute(sql, params, mode)


_WRITE = re.compile(r'^\s*(?:WITH .*?\)\s*)?(UPDATE|DELETE FROM)\s+"(\w+)"', re.S)


def test_writes_by_id_name_the_owner(fresh: str) -> None:
    """Outside for_user, every UPDATE and DELETE of a user-owned row names user_id, and
    its plan finds the row through the owner-leading key (router-friendly for Citus)."""
    with clonestore.open(with_layout(fresh)) as store:
        assert "owner_routed" in capabilities_of(store.backend)
        user = store.users.create(email="w@example.com", name="W")
        voice = store.voice_models.create(user_id=user.id, name="v", provider="p")
        session = store.sessions.create(user_id=user.id)
        document = store.documents.create(user_id=user.id, filename="a.txt", size_bytes=1,
                                          content_type="text/plain")  # fmt: skip
        memory = store.memories.create(user_id=user.id, content="m", embedding=[1.0, 0.0])
        statements = _Statements(store.backend)
        store.voice_models.activate(voice.id)
        store.voice_models.update(voice.id, name="v2")
        store.sessions.update_state(session.id, "listening")
        turn = store.sessions.add_turn(session.id, llm_latency_ms=5)
        store.turns.hard_delete(turn.id)
        store.sessions.end(session.id)
        store.documents.update_status(document.id, "processing")
        store.documents.set_vector_ids(document.id, ["x"])
        store.memories.update(memory.id, importance=0.9)
        store.memories.delete(memory.id)
        store.memories.restore(memory.id)
        store.memories.hard_delete(memory.id)
        writes = []
        for sql, params in statements.seen:
            match = _WRITE.match(sql)
            if match and match.group(2) in OWNED:
                writes.append((match.group(2), sql, params))
        assert {table for table, _, _ in writes} >= {
            "voice_models", "sessions", "turns", "documents", "memories"
        }  # fmt: skip
        conn = psycopg2.connect(fresh, connect_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute("SET enable_seqscan = off")
                for _table, sql, params in writes:
                    assert re.search(r'"user_id" = %s', sql), sql
                    cur.execute("EXPLAIN " + sql, params)
                    plan = "\n".join(row[0] for row in cur.fetchall())
                    assert re.search(r"Index Cond: \(.*user_id = ", plan), (sql, plan)
        finally:
            conn.rollback()
            conn.close()


def test_find_by_email_reads_the_lookup_table_first(fresh: str) -> None:
    """find_by_email reads user_email_keys by the key, then the user by id (one shard
    each on Citus); an unknown email reads nothing more."""
    with clonestore.open(with_layout(fresh)) as store:
        user = store.users.create(email="f@example.com", name="F")
        statements = _Statements(store.backend)
        assert store.users.find_by_email("F@example.com") == user
        assert store.users.find_by_email("nobody@example.com") is None
        sqls = [sql for sql, _ in statements.seen]
        assert len(sqls) == 3, sqls
        assert "user_email_keys" in sqls[0]
        assert "user_email_keys" in sqls[2]
        assert re.search(r'"id" = %s', sqls[1]), sqls[1]


def test_the_plain_layout_declares_no_routing(postgres_url: str) -> None:
    """Without the option, nothing changes: no capability, the email index as it was."""
    with clonestore.open(postgres_url) as store:
        assert "owner_routed" not in capabilities_of(store.backend)
    assert ("users", "uq_users_email_key") in _unique_keys(postgres_url)
