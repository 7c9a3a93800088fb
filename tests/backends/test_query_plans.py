"""Every statement a repository call sends is answered through an index, never by
scanning a whole table, on SQLite and PostgreSQL.

The test records the SQL the backend executes for each repository call (the
backend has one place that runs statements, ``execute``) and asks the engine
for its plan: ``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN (FORMAT JSON)`` on
PostgreSQL with sequential scans, bitmap scans and sorts switched off (so the
planner picks them only when no index can serve the statement, whatever the
table's size).

Allowed: a scan of one user's rows found through an index (a user's memories
for ``similar``, say) and the sort of those. Refused: a full scan of a domain
table, and, for statements with ``LIMIT``, sorting a whole table to return a
page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg2
import pytest
from clonestore_peewee.sql._backend import MANY
from clonestore_peewee.sqlite._backend import DRIVER as sqlite3
from clonestore_peewee.sqlite._vectors import load_extension  # the driver the backend uses

import clonestore
from clonestore.records import TABLES
from clonestore.testing import FrozenClock

DOMAIN_TABLES = frozenset(spec.name for spec in TABLES.values())


#: The engines whose plans this module reads (not MariaDB yet: its EXPLAIN has no way
#: to switch full scans off, so tiny test tables would always be scanned).
PLANNED = ("sqlite", "postgres")


@pytest.fixture(params=PLANNED, ids=PLANNED)
def clonestore_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """SQLite and PostgreSQL (plans are an engine's)."""
    from tests.matrix import _url

    return _url(request.param, request, tmp_path)


@pytest.fixture
def store(store_factory: Any) -> clonestore.Store:
    """A store whose clock hands out distinct, increasing times."""
    return store_factory(clock=FrozenClock(step=0.001))  # type: ignore[no-any-return]


class Recorder:
    """Wraps a backend's ``execute`` and keeps each statement with its parameters."""

    def __init__(self, backend: Any) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._backend = backend
        self._original = backend.execute

        def execute(sql: str, params: Any, mode: int) -> Any:
            if mode != MANY:  # a statement run per row of a list (the vector tables' upkeep)
                self.calls.append((sql, params))
            return self._original(sql, params, mode)

        backend.execute = execute

    def take(self) -> list[tuple[str, Any]]:
        calls, self.calls = self.calls, []
        return [
            (sql, params)
            for sql, params in calls
            if re.match(r"\s*(SELECT|UPDATE|DELETE|WITH)\b", sql, re.IGNORECASE)
        ]

    def restore(self) -> None:
        self._backend.execute = self._original


def _sqlite_problems(conn: sqlite3.Connection, sql: str, params: Any) -> list[str]:
    rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    details = [row[3] for row in rows]
    problems = []
    for detail in details:
        scan = re.match(r"SCAN (\w+)(.*)", detail)
        if scan and scan.group(1) in DOMAIN_TABLES and "INDEX" not in scan.group(2):
            problems.append(detail)
    paged = re.search(r"\bLIMIT\b", sql, re.IGNORECASE)
    sorted_ = any("TEMP B-TREE FOR ORDER BY" in d for d in details)
    # A search on deleted_at alone (IS NULL shows as "deleted_at=?") reads every live row.
    scanned = [d for d in details if re.match(r"SCAN \w+|SEARCH \w+ .*\(deleted_at=\?\)$", d)]
    if paged and sorted_ and scanned:
        # Sorting rows found by an index lookup (one owner's, one email's) is fine;
        # reading a whole table (even through an index) to sort it for a page is not.
        problems.append("sorts a whole table for a page: " + " | ".join(details))
    return problems


def _postgres_problems(conn: Any, sql: str, params: Any) -> list[str]:
    with conn.cursor() as cur:
        # Off, not forbidden: the planner still picks these when nothing else can serve
        # the statement, so what remains shows a missing index, whatever the row counts.
        cur.execute("SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off")
        cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cur.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    problems: list[str] = []
    paged = re.search(r"\bLIMIT\b", sql, re.IGNORECASE)

    def whole_table(node: dict[str, Any]) -> bool:
        """A scan below reads every (live) row: no index condition but deleted_at's."""
        kind = node.get("Node Type", "")
        if kind.endswith("Scan") and kind != "Bitmap Heap Scan":
            cond = node.get("Index Cond")
            return cond is None or bool(re.fullmatch(r"\(?(\w+\.)?deleted_at IS NULL\)?", cond))
        return any(whole_table(child) for child in node.get("Plans", ()))

    def walk(node: dict[str, Any]) -> None:
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in DOMAIN_TABLES:
            problems.append(f"Seq Scan on {node['Relation Name']}")
        if paged and node.get("Node Type") == "Sort" and whole_table(node):
            problems.append("sorts a whole table for a page: " + json.dumps(node)[:300])
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan[0]["Plan"])
    return problems


@pytest.fixture
def explain(store: clonestore.Store, clonestore_url: str) -> Iterator[Callable[..., list[str]]]:
    """``explain(sql, params)``: what in the statement's plan scans a whole table."""
    if clonestore_url.startswith("sqlite"):
        conn = sqlite3.connect(clonestore_url.removeprefix("sqlite:///"))
        load_extension(conn)  # the vector tables are sqlite-vec's
        # The store keeps planner statistics fresh (ANALYZE when it opens a file with
        # data and none): read plans as the store's own connections see them.
        yield lambda sql, params: _sqlite_problems(conn, sql, params)
        conn.close()
    else:
        conn = psycopg2.connect(clonestore_url)
        conn.autocommit = True
        yield lambda sql, params: _postgres_problems(conn, sql, params)
        conn.close()


def _populate(store: clonestore.Store) -> dict[str, Any]:
    """A few users with every kind of row, some soft-deleted."""
    ids: dict[str, Any] = {"users": []}
    for n in range(12):
        user = store.users.create(email=f"user{n}@example.com", name=f"User {n}")
        ids["users"].append(user.id)
        voice = store.voice_models.create(user_id=user.id, name="v", provider="elevenlabs")
        store.face_models.create(user_id=user.id, name="f", provider="did")
        session = store.sessions.create(user_id=user.id, voice_model_id=voice.id)
        for _ in range(2):
            store.sessions.add_turn(
                session.id, user_transcript="hi", llm_response="hello", llm_cost=Decimal("0.01")
            )
        store.documents.create(user_id=user.id, filename="doc.txt", tags=["a", "b"])
        store.memories.add(user.id, "m", [1.0, 0.0, 0.5])
        if n % 4 == 3:
            store.memories.add(user.id, "gone", [0.0, 1.0, 0.0])
    ids["voice"] = voice.id
    ids["session"] = session.id
    store.users.delete(ids["users"][0])
    return ids


def _calls(store: clonestore.Store, ids: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """Every repository read and write that reaches storage by a query."""
    uid = ids["users"][1]
    first = store.users.page(size=3)
    assert first.next_cursor is not None
    return {
        "users.get": lambda: store.users.get(uid),
        "users.find_by_email": lambda: store.users.find_by_email("user2@example.com"),
        "users.find_one": lambda: store.users.find_one(email="user2@example.com"),
        "users.find_many": lambda: store.users.find_many(limit=5),
        "users.page": lambda: store.users.page(size=3),
        "users.page(cursor)": lambda: store.users.page(size=3, cursor=first.next_cursor),
        "users.page(-created_at)": lambda: store.users.page(order_by="-created_at", size=3),
        "users.count": lambda: store.users.count(),
        "users.exists": lambda: store.users.exists(email="user3@example.com"),
        "users.update": lambda: store.users.update(uid, name="Renamed"),
        "voice_models.for_owner": lambda: store.voice_models.for_owner(uid),
        "voice_models.active_for": lambda: store.voice_models.active_for(uid),
        "voice_models.activate": lambda: store.voice_models.activate(ids["voice"]),
        "voice_models.page(user)": lambda: store.voice_models.page(where={"user_id": uid}),
        "face_models.page": lambda: store.face_models.page(size=2),
        "sessions.page(user)": lambda: store.sessions.page(where={"user_id": uid}, size=2),
        "sessions.page": lambda: store.sessions.page(size=2),
        "sessions.get_with_turns": lambda: store.sessions.get_with_turns(ids["session"]),
        "sessions.update_state": lambda: store.sessions.update_state(ids["session"], "listening"),
        "sessions.add_turn": lambda: store.sessions.add_turn(ids["session"], user_transcript="x"),
        "sessions.user_statistics": lambda: store.sessions.user_statistics(uid),
        "sessions.end": lambda: store.sessions.end(ids["session"]),
        "turns.page": lambda: store.turns.page(size=2),
        "documents.search_by_tags": lambda: store.documents.search_by_tags(uid, ["a"]),
        "documents.page": lambda: store.documents.page(size=2),
        "memories.similar": lambda: store.memories.similar(uid, [1.0, 0.0, 0.0], limit=2),
        "memories.page(user)": lambda: store.memories.page(where={"user_id": uid}, size=2),
        "memories.similar(metadata)": lambda: store.memories.similar(
            uid, [1.0, 0.0, 0.0], limit=2, where={"metadata__kind": "a", "metadata__n__gte": 1}
        ),
        "memories.page(user, metadata)": lambda: store.memories.page(
            where={"user_id": uid, "metadata__kind__in": ["a", "b"]}, size=2
        ),
        "users.delete": lambda: store.users.delete(ids["users"][2]),
        "users.restore": lambda: store.users.restore(ids["users"][2]),
        "export_user": lambda: store.export_user(ids["users"][3]),
        "erase_user": lambda: store.erase_user(ids["users"][4]),
    }


def test_no_repository_query_scans_a_whole_table(
    store: clonestore.Store, explain: Callable[[str, Any], list[str]]
) -> None:
    """No statement of any repository call plans a full scan (or a whole-table sort for a page)."""
    ids = _populate(store)
    recorder = Recorder(store.backend)
    found: dict[str, list[str]] = {}
    try:
        for name, call in _calls(store, ids).items():
            recorder.take()
            call()
            statements = recorder.take()
            assert statements, f"{name} sent no query; the test no longer covers it"
            for sql, params in statements:
                problems = explain(sql, params)
                if problems:
                    found.setdefault(name, []).append(f"{sql}\n    -> {problems}")
    finally:
        recorder.restore()
    assert not found, "full scans:\n" + "\n".join(
        f"{k}:\n  " + "\n  ".join(v) for k, v in found.items()
    )
