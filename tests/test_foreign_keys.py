"""Foreign keys in the SQL engines: migration 0008 on databases holding orphans, and
``clonestore orphans`` listing them (memory://, SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner

import clonestore
from clonestore import BackendError, ForeignKeyViolation
from clonestore._orphans import find_orphans
from clonestore.cli import cli
from clonestore.query import Cond
from clonestore.records import TABLES
from tests.test_migrations import engine_url  # noqa: F401 - a fixture

BEFORE = "0007_metadata_gin"
MIGRATION = "0008_foreign_keys"
#: Every relation, as the engines report their foreign keys: (table, column, referenced).
EXPECTED = {
    (name, fk.columns[0], fk.references)
    for name, spec in TABLES.items()
    for fk in spec.foreign_keys
}


def _foreign_keys(store: clonestore.Store) -> set[tuple[str, str, str]]:
    """The foreign keys the engine has on the core tables."""
    database: Any = store.backend.database
    with database.connection_context():
        return {
            (name, fk.column, fk.dest_table)
            for name in TABLES
            for fk in database.get_foreign_keys(name)
        }


def _plant_orphans(store: clonestore.Store) -> dict[str, Any]:
    """Good rows, and one orphan per kind, written through the SPI before the keys exist."""
    user = store.users.create(email="kept@example.com", name="Kept")
    session = store.sessions.create(user_id=user.id)
    turn = store.sessions.add_turn(session.id, user_transcript="hi")
    # Memories without embeddings: rows written by this version before its later
    # migrations ran (0009 rewrites vector blobs) are not what this test is about.
    linked = store.memories.add(user.id, "linked", session_id=session.id)
    backend = store.backend
    voice = store.voice_models.create(user_id=user.id, provider="p")
    ghost_voice = {**backend.get(store.tables["voice_models"], voice.id), "id": "ghost-voice",
                   "user_id": "no-such-user", "is_active": False}  # fmt: skip
    backend.insert(store.tables["voice_models"], ghost_voice)
    ghost_turn = {**backend.get(store.tables["turns"], turn.id), "id": "ghost-turn",
                  "session_id": "no-such-session", "turn_index": 7}  # fmt: skip
    backend.insert(store.tables["turns"], ghost_turn)
    dangling = store.memories.add(user.id, "dangling")
    backend.update(
        store.tables["memories"], Cond("id", "eq", dangling.id), {"session_id": "gone-session"}
    )
    return {"user": user, "session": session, "turn": turn, "linked": linked,
            "dangling": dangling}  # fmt: skip


def test_migration_refuses_orphans_changes_nothing_then_adds_the_keys(engine_url: str) -> None:  # noqa: F811
    """0008 on a database holding orphans refuses with their counts and the command that
    lists them, adds no key and stays pending; once they are gone it adds every key, the
    rows are kept, and the engine refuses a new orphan with ForeignKeyViolation."""
    with clonestore.open(engine_url, create_tables=False) as store:
        store.migrate(to=BEFORE)
        made = _plant_orphans(store)
        with pytest.raises(BackendError) as refused:
            store.migrate()
        message = str(refused.value)
        for relation in ("voice_models.user_id: 1", "turns.session_id: 1",
                         "memories.session_id: 1", "clonestore orphans --url"):  # fmt: skip
            assert relation in message, message
        assert "\n" not in message
        assert _foreign_keys(store) == set()
        pending = [m["name"] for m in store.migration_status() if not m["applied"]]
        assert MIGRATION in pending
        found = {o.relation: [r["id"] for r in o.rows] for o in find_orphans(store.backend,
                                                                              store.tables)}
        assert found["voice_models.user_id"] == ["ghost-voice"]
        assert found["turns.session_id"] == ["ghost-turn"]
        assert found["memories.session_id"] == [made["dangling"].id]
        assert sum(len(ids) for ids in found.values()) == 3
        # The same refusal again (re-runnable): nothing half-applied.
        with pytest.raises(BackendError):
            store.migrate()
        backend = store.backend
        backend.delete(store.tables["voice_models"], Cond("id", "eq", "ghost-voice"))
        backend.delete(store.tables["turns"], Cond("id", "eq", "ghost-turn"))
        backend.update(
            store.tables["memories"], Cond("id", "eq", made["dangling"].id), {"session_id": None}
        )
        assert MIGRATION in store.migrate()
        assert _foreign_keys(store) == EXPECTED
        assert store.migrate() == []
        assert store.memories.get(made["linked"].id) == made["linked"]
        assert store.sessions.get_with_turns(made["session"].id).turns == [made["turn"]]
        orphan = {**backend.get(store.tables["turns"], made["turn"].id), "id": "new-orphan",
                  "session_id": "no-such-session", "turn_index": 9}  # fmt: skip
        with pytest.raises(ForeignKeyViolation):
            backend.insert(store.tables["turns"], orphan)
        with pytest.raises(ForeignKeyViolation):
            backend.delete(store.tables["users"], Cond("id", "eq", made["user"].id))
        assert store.erase_user(made["user"].id)["users"] == 1
        assert find_orphans(backend, store.tables) == [
            o for o in find_orphans(backend, store.tables) if not o.rows
        ]


def test_migration_down_removes_the_keys(engine_url: str) -> None:  # noqa: F811
    """0008's down() removes every key it added (SQLite: rebuilds the tables without them),
    rows kept; up() adds them again."""
    with clonestore.open(engine_url, create_tables=False) as store:
        store.migrate(to=MIGRATION)
        user = store.users.create(email="kept@example.com")
        session = store.sessions.create(user_id=user.id)
        memory = store.memories.add(user.id, "m", session_id=session.id)
        assert _foreign_keys(store) == EXPECTED
        store.downgrade(to=BEFORE)
        assert _foreign_keys(store) == set()
        assert store.memories.get(memory.id) == memory
        store.migrate(to=MIGRATION)
        assert _foreign_keys(store) == EXPECTED


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clonestore.cli", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_cli_orphans_lists_them_per_relation(engine_url: str) -> None:  # noqa: F811
    """`clonestore orphans` lists each orphan under its relation and exits 1 (--json: the
    same as data); with none left it says so and exits 0. It changes nothing."""
    with clonestore.open(engine_url, create_tables=False) as store:
        store.migrate(to=BEFORE)
        made = _plant_orphans(store)
    listed = _cli("orphans", "--url", engine_url)
    assert listed.returncode == 1, listed.stderr
    assert "voice_models.user_id -> users: 1 orphan(s)" in listed.stdout
    assert "ghost-turn: session_id no-such-session does not exist" in listed.stdout
    assert "3 orphan(s)" in listed.stdout
    as_json = _cli("orphans", "--url", engine_url, "--json")
    assert as_json.returncode == 1, as_json.stderr
    counts = {r["relation"]: r["count"] for r in json.loads(as_json.stdout)}
    assert counts == {f"{t}.{c}": int((t, c) in {("voice_models", "user_id"),
                      ("turns", "session_id"), ("memories", "session_id")})
                      for t, c, _ in EXPECTED}  # fmt: skip
    with clonestore.open(engine_url, create_tables=False) as store:
        assert store.memories.get(made["linked"].id) == made["linked"]
        backend = store.backend
        backend.delete(store.tables["voice_models"], Cond("id", "eq", "ghost-voice"))
        backend.delete(store.tables["turns"], Cond("id", "eq", "ghost-turn"))
        backend.delete(store.tables["memories"], Cond("id", "eq", made["dangling"].id))
    clean = _cli("orphans", "--url", engine_url)
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.strip().endswith("no orphans")


def test_cli_orphans_on_memory_finds_none() -> None:
    """On memory:// (which enforces the keys itself) `clonestore orphans` finds none and
    exits 0, as text and as JSON."""
    url = "memory://orphans-cli"
    with clonestore.open(url) as store:
        user = store.users.create(email="a@example.com")
        store.sessions.add_turn(store.sessions.create(user_id=user.id).id)
        result = CliRunner().invoke(cli, ["orphans", "--url", url])
        assert result.exit_code == 0, result.output
        assert result.output.strip().endswith("no orphans")
        as_json = CliRunner().invoke(cli, ["orphans", "--url", url, "--json"])
        assert as_json.exit_code == 0, as_json.output
        assert all(r["count"] == 0 for r in json.loads(as_json.output))
