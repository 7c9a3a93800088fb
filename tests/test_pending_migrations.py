"""A store opened with ``create_tables=False`` on a database with pending core migrations
reads but refuses every write (MigrationsPending, naming ``clonestore migrate``), on
SQLite, PostgreSQL and MariaDB, sync and async: migration 0009 converts float64 vector
blobs to float32 in place and cannot tell a float32 blob the current version wrote."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import clonestore
from clonestore import MigrationsPending
from tests.test_migrations import engine_url, migrations_on  # noqa: F401 (a fixture)

# Before the migrations that convert vectors in place: 0009 (SQLite, MariaDB), 0012
# (PostgreSQL).
BEFORE = "0008_foreign_keys"


def _rows(store: clonestore.Store) -> dict[str, int]:
    return {"users": store.users.count(), "memories": store.memories.count()}


def _refused(store: clonestore.Store, write: Callable[[], Any]) -> MigrationsPending:
    before = _rows(store)
    with pytest.raises(MigrationsPending) as refused:
        write()
    assert _rows(store) == before
    return refused.value


def test_writes_are_refused_while_core_migrations_are_pending(
    engine_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Every kind of write is refused before anything is written, reads work, the error
    names the pending migrations and the command; once another process has migrated, a
    store opened again writes."""
    with clonestore.open(engine_url, create_tables=False) as setup:
        setup.migrate(to=BEFORE)
        user = setup.users.create(email="old@example.com", name="Old")
        kept = setup.memories.add(user.id, "kept")  # no vector: 0009 would convert it
        dump = setup.dump(tmp_path / "dump.jsonl")
    with clonestore.open(engine_url, create_tables=False) as store:
        assert store.users.get(user.id) == user
        assert [m.id for m in store.memories.for_owner(user.id)] == [kept.id]
        writes: dict[str, Callable[[], Any]] = {
            "create": lambda: store.users.create(email="new@example.com", name="New"),
            "add": lambda: store.memories.add(user.id, "new", [0.5, 0.5]),
            "create_many": lambda: store.memories.create_many(
                [{"user_id": user.id, "content": "c", "embedding": [1.0, 2.0]}] * 3
            ),
            "update": lambda: store.memories.update(kept.id, embedding=[0.0, 1.0]),
            "update_many": lambda: store.users.update_many({"id": user.id}, name="Renamed"),
            "delete": lambda: store.memories.delete(kept.id),
            "hard_delete": lambda: store.memories.hard_delete(kept.id),
            "erase_user": lambda: store.erase_user(user.id),
            "upsert": lambda: store.users.upsert(user.id, email="old@example.com", name="U"),
            "load": lambda: store.load(dump["file"], allow_non_empty=True),
        }
        names = migrations_on(engine_url)
        pending = tuple(names[names.index(BEFORE) + 1 :])
        assert any(name.startswith(("0009", "0012")) for name in pending)
        for what, write in writes.items():
            error = _refused(store, write)
            assert error.pending == pending, what
            assert f"clonestore migrate --url {store.url}" in str(error), what
            assert isinstance(error, clonestore.ConfigurationError)
        assert store.memories.get(kept.id) == kept
        with clonestore.open(engine_url) as other:  # opening migrates: another process
            assert other.migration_status()[-1]["applied"]
        _refused(store, writes["add"])  # this store still refuses: open it again
    with clonestore.open(engine_url, create_tables=False) as fresh:  # nothing pending
        fresh.memories.add(user.id, "after", [0.5, 0.5])
        assert fresh.memories.count() == 2


def test_async_writes_are_refused_and_migrate_ends_it(engine_url: str) -> None:  # noqa: F811
    """open_async: the same refusal; the store's own migrate() ends it."""
    with clonestore.open(engine_url, create_tables=False) as setup:
        setup.migrate(to=BEFORE)
        user = setup.users.create(email="old@example.com", name="Old")

    async def run() -> None:
        async with clonestore.open_async(engine_url, create_tables=False) as store:
            assert (await store.users.get(user.id)) == user
            with pytest.raises(MigrationsPending) as refused:
                await store.memories.add(user.id, "m", [1.0, 0.0])
            assert "clonestore migrate --url" in str(refused.value)
            assert await store.memories.count() == 0
            assert await store.migrate()
            await store.memories.add(user.id, "m", [1.0, 0.0])
            assert await store.memories.count() == 1

    asyncio.run(run())
