"""sqlite:// vector search: the sqlite-vec tables stay in step with the rows, and both
paths (sqlite-vec, and the aggregate without it: vector_extension=false, or the standard
library's sqlite3, which cannot load extensions) give the kit's exact answers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import clonestore
from clonestore.testing.contract import test_capabilities as kit
from clonestore.vectors import METRICS, nearest_reference

VECTOR_TESTS = [
    getattr(kit, name)
    for name in kit.CAPABILITY_TESTS["vector_search"]
]  # fmt: skip


def _open(path: Path, extension: bool = True) -> clonestore.Store:
    flag = "" if extension else "?vector_extension=false"
    return clonestore.open(f"sqlite:///{path}{flag}")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "vectors.db"


@pytest.fixture
def store(db: Path) -> Iterator[clonestore.Store]:
    with _open(db) as s:
        assert s.backend.health()["vector_search"].startswith("sqlite-vec")
        yield s


def _indexed(store: clonestore.Store, dimension: int = 3) -> dict[str, Any]:
    """The ids in the vec0 table of a dimension (with their owner) and the loose ids."""
    run: Any = store.backend.execute  # type: ignore[attr-defined]
    vec = dict(run(f"SELECT id, owner FROM memories__embedding__vec{dimension}", (), 2))
    loose = {id for (id,) in run("SELECT id FROM memories__embedding__loose", (), 2)}
    return {"vec": vec, "loose": loose}


def test_vector_tables_follow_every_write_in_its_transaction(store: clonestore.Store) -> None:
    """Insert, rollback, update, soft delete, restore, hard delete and erasure move the
    float32 copies with the rows; zero and out-of-range vectors are kept loose."""
    user = store.users.create(email="a@example.com", name="A")
    kept = store.memories.add(user.id, "kept", [1.0, 2.0, 3.0])
    zero = store.memories.add(user.id, "zero", [0.0, 0.0, 0.0])
    huge = store.memories.add(user.id, "huge", [1e30, 0.0, 1.0])
    assert _indexed(store) == {"vec": {kept.id: user.id}, "loose": {zero.id, huge.id}}
    with contextlib.suppress(RuntimeError), store.transaction():
        store.memories.add(user.id, "rolled back", [1.0, 0.0, 0.0])
        store.memories.delete(kept.id)
        raise RuntimeError("roll back")
    assert _indexed(store) == {"vec": {kept.id: user.id}, "loose": {zero.id, huge.id}}
    store.memories.update(zero.id, embedding=[0.0, 1.0, 0.0])
    assert _indexed(store) == {"vec": {kept.id: user.id, zero.id: user.id}, "loose": {huge.id}}
    store.memories.delete(kept.id)
    assert kept.id not in _indexed(store)["vec"]
    store.memories.restore(kept.id)
    assert kept.id in _indexed(store)["vec"]
    store.memories.hard_delete(zero.id)
    assert _indexed(store) == {"vec": {kept.id: user.id}, "loose": {huge.id}}
    other = store.memories.add(user.id, "other dimension", [1.0, 0.0])
    assert other.id in _indexed(store, 2)["vec"]
    store.users.delete(user.id)  # the cascade soft-deletes the memories
    assert _indexed(store) == {"vec": {}, "loose": set()}
    store.users.restore(user.id)
    assert _indexed(store) == {"vec": {kept.id: user.id}, "loose": {huge.id}}
    store.erase_user(user.id)
    assert _indexed(store) == {"vec": {}, "loose": set()}


def test_an_owner_with_few_vectors_takes_little_room(store: clonestore.Store, db: Path) -> None:
    """sqlite-vec writes a whole chunk per owner with its first vector: chunks of 32
    vectors keep 20 owners with one 384-dimension memory each under a few MB (with
    sqlite-vec's default of 1,024 vectors a chunk, 3 MB an owner: over 60 MB)."""
    users = store.users.create_many(
        [{"email": f"u{i}@example.com", "name": f"U{i}"} for i in range(20)]
    )
    store.memories.create_many(
        [{"user_id": u.id, "content": "one", "embedding": [1.0] * 384} for u in users]
    )
    wal = Path(f"{db}-wal")
    assert db.stat().st_size + (wal.stat().st_size if wal.exists() else 0) < 8_000_000


def test_rows_written_before_the_first_vector_of_a_dimension_are_indexed(db: Path) -> None:
    """A dimension's vec0 table is filled from the rows when it is created: rows written
    by a backend without sqlite-vec before it are found."""
    with _open(db, extension=False) as plain:
        user = plain.users.create(email="a@example.com", name="A")
        first = plain.memories.add(user.id, "first", [1.0, 0.0, 0.0])
    with _open(db) as store:
        second = store.memories.add(user.id, "second", [0.0, 1.0, 0.0])
        assert set(_indexed(store)["vec"]) == {first.id, second.id}


def test_writes_without_the_extension_mark_the_vector_tables_stale(db: Path) -> None:
    """A backend without sqlite-vec marks the vec0 tables stale in its write's transaction;
    searches skip stale tables, and a backend with sqlite-vec rebuilds them at open."""
    with _open(db) as store:
        user = store.users.create(email="a@example.com", name="A")
        old = store.memories.add(user.id, "old", [1.0, 0.0, 0.0])
    with _open(db, extension=False) as plain:
        plain.memories.delete(old.id)
        new = plain.memories.add(user.id, "new", [1.0, 0.1, 0.0])
    with _open(db) as store:
        assert set(_indexed(store)["vec"]) == {new.id}
        found = store.memories.similar(user.id, [1.0, 0.0, 0.0])
        assert [r.memory.id for r in found] == [new.id]
        run: Any = store.backend.execute  # type: ignore[attr-defined]
        assert run("SELECT stale FROM clonestore_vector_index", (), 2) == [(0,)]


@pytest.fixture(params=["sqlite-vec", "portable"])
def clonestore_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The kit's vector tests on both paths."""
    flag = "" if request.param == "sqlite-vec" else "?vector_extension=false"
    return f"sqlite:///{tmp_path / 'kit.db'}{flag}"


@pytest.mark.parametrize("test", VECTOR_TESTS, ids=lambda t: t.__name__)
def test_kit_vector_search_on_both_paths(
    test: Any, store_factory: Any, clonestore_url: str
) -> None:
    """The kit's vector_search tests pass with sqlite-vec and without it."""
    probe = store_factory()
    want = "portable" if "vector_extension=false" in clonestore_url else "sqlite-vec"
    assert probe.backend.health()["vector_search"].startswith(want)
    if "store" in test.__code__.co_varnames[: test.__code__.co_argcount]:
        test(probe)
    else:
        test(store_factory)


def test_many_candidates_and_huge_limits_stay_exact(store: clonestore.Store) -> None:
    """More candidates than sqlite-vec's k limit (4,096), conditions that filter most of
    them out, and every metric: still the reference answer."""
    user = store.users.create(email="a@example.com", name="A")
    rows = [
        {"user_id": user.id, "content": f"m{i}", "embedding": [float(i % 7), 1.0, 0.0],
         "memory_type": "preference" if i % 50 == 0 else "fact"}
        for i in range(5000)
    ]  # fmt: skip
    store.memories.create_many(rows)
    live = [kit.vars_of(m) for m in store.memories.for_owner(user.id)]
    for metric in METRICS:
        got = store.memories.similar(user.id, [1.0, 1.0, 0.0], limit=4500, metric=metric)
        want = kit.nearest_reference(live, "embedding", [1.0, 1.0, 0.0], metric, 4500)
        assert [(r.memory.id, r.score) for r in got] == [(r["id"], v) for r, v in want]
        prefs = [m for m in live if m["memory_type"] == "preference"]
        got = store.memories.similar(
            user.id, [1.0, 1.0, 0.0], limit=20, metric=metric, where={"memory_type": "preference"}
        )
        want = kit.nearest_reference(prefs, "embedding", [1.0, 1.0, 0.0], metric, 20)
        assert [(r.memory.id, r.score) for r in got] == [(r["id"], v) for r, v in want]


#: Makes ``import pysqlite3`` fail, so Peewee falls back to the standard library's sqlite3.
_NO_PYSQLITE3 = "raise ImportError('hidden: the standard library sqlite3 is under test')\n"


def test_standard_library_sqlite3_searches_without_the_extension(tmp_path: Path) -> None:
    """With the standard library's sqlite3 (a user's Python, no pysqlite3), the backend
    still declares vector_search and the kit's vector tests pass, in a subprocess."""
    hidden = tmp_path / "hide"
    (hidden / "pysqlite3").mkdir(parents=True)
    (hidden / "pysqlite3" / "__init__.py").write_text(_NO_PYSQLITE3)
    path = os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    url = f"sqlite:///{tmp_path / 'stdlib.db'}"
    probe = textwrap.dedent(
        f"""
        import sqlite3, peewee, clonestore
        from clonestore.spi import capabilities_of
        assert peewee.sqlite3 is sqlite3, peewee.sqlite3
        with clonestore.open({url!r}) as s:
            assert "vector_search" in capabilities_of(s.backend)
            print(s.backend.health()["vector_search"], sqlite3.sqlite_version)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("portable"), out.stdout
    kit_run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--pyargs",
         "clonestore.testing", f"--clonestore-url={url}", "-k", "vector_search",
         "--clonestore-allow-wipe"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    tail = kit_run.stdout[-3000:]
    assert kit_run.returncode == 0, tail
    assert f"{len(VECTOR_TESTS)} passed" in tail, tail
    assert "skipped" not in tail, tail


def test_a_stored_vector_longer_than_sqlite_vec_takes_never_locks_the_store(db: Path) -> None:
    """A 9,000-dimension embedding (sqlite-vec takes 8,192) is a ValidationError in every
    mode (sync, vector_extension=false, open_async); one stored before the limit (written
    through the SPI) no longer stops the store opening with sqlite-vec: it is left out of
    the vec0 tables, searched exactly, reported by health() and doctor, and exported and
    erased like any other."""
    import asyncio

    from clonestore.cli.doctor import diagnose

    too_long = [0.5] * 9_000
    with _open(db) as store:
        assert store.max_vector_dimensions == 8_192
        user = store.users.create(email="a@example.com", name="A")
        small = store.memories.add(user.id, "small", [1.0, 0.5, 0.25])
        with pytest.raises(clonestore.ValidationError, match="8192"):
            store.memories.add(user.id, "long", too_long)
    with _open(db, extension=False) as store:
        with pytest.raises(clonestore.ValidationError, match="8192"):
            store.memories.add(user.id, "long", too_long)
        spec = store.tables["memories"]
        legacy = {**store.backend.get(spec, small.id), "embedding": too_long,
                  "id": "00000000-0000-4000-8000-000000000009", "content": "legacy"}
        store.backend.insert(spec, legacy)  # as a store without the limit wrote it

    async def refused_async() -> None:
        astore = await clonestore.open_async(f"sqlite:///{db}")
        try:
            with pytest.raises(clonestore.ValidationError, match="8192"):
                await astore.memories.add(user.id, "long", too_long)
        finally:
            await astore.close()

    asyncio.run(refused_async())
    with _open(db) as store:  # raised BackendError (vec0 of 9000) before
        assert store.health()["vectors_not_indexed"] == {"memories.embedding": 1}
        warned = [c for c in diagnose(store) if c.name == "vector index"]
        assert [c.status for c in warned] == ["warn"]
        assert "8192" in warned[0].detail
        found = store.memories.similar(user.id, [1.0, 0.5, 0.25], limit=5)
        assert [r.memory.id for r in found] == [small.id]
        exported = store.export_user(user.id)
        assert len(exported["memories"]) == 2
        store.erase_user(user.id)
        assert "vectors_not_indexed" not in store.health()


def test_tiny_items_are_flushed_so_vec0_scores_real_embeddings(store: clonestore.Store) -> None:
    """Items below 2**-50 (every all-MiniLM-L6-v2 vector has two near 1e-33) are stored as
    0, so such vectors go to vec0, not loose; one an older version stored with them
    (planted through the SPI) stays loose and exact, and writing its embedding again
    indexes it."""
    user = store.users.create(email="a@example.com", name="A")
    new = store.memories.add(user.id, "new", [0.25, -1.6e-33, 0.5])
    assert new.embedding == (0.25, 0.0, 0.5)
    assert _indexed(store) == {"vec": {new.id: user.id}, "loose": set()}
    memories = store.tables["memories"]
    row = dict(store.backend.get(memories, new.id) or {})
    old_id = "00000000-0000-4000-8000-000000000001"
    tiny = float(np.float32(-1.6e-33))
    store.backend.insert(memories, {**row, "id": old_id, "embedding": [0.5, tiny, 0.25]})
    assert _indexed(store) == {"vec": {new.id: user.id}, "loose": {old_id}}
    live = [
        {"id": m.id, "embedding": list(m.embedding or ())}
        for m in store.memories.for_owner(user.id)
    ]
    assert [0.5, tiny, 0.25] in [m["embedding"] for m in live]
    for metric in METRICS:
        got = store.memories.similar(user.id, [0.5, 0.0, 0.25], limit=5, metric=metric)
        want = nearest_reference(live, "embedding", [0.5, 0.0, 0.25], metric, 5)
        assert [(r.memory.id, r.score) for r in got] == [(w["id"], s) for w, s in want]
    old = store.memories.get(old_id)
    store.memories.update(old_id, embedding=old.embedding)
    assert store.memories.get(old_id).embedding == (0.5, 0.0, 0.25)
    assert _indexed(store) == {"vec": {new.id: user.id, old_id: user.id}, "loose": set()}
