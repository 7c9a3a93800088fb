"""open_async: the AsyncStore's own behaviour on the backend matrix (the contract tests' async
twin is the contract suite's [<backend>-async] runs): transactions per task, cancellation, the
``clonestore_async_backends`` hook and the worker-thread fallback for synchronous backends."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from clonestore_memory import MemoryBackend

import clonestore
from clonestore import AsyncStore, ConfigurationError, NotFound, hookimpl
from clonestore._worker_thread import WorkerThreadBackend
from clonestore.query import TRUE
from clonestore.repositories import REPOSITORIES
from clonestore.schema import removal_order


def _run(main: Any) -> Any:
    return asyncio.run(main)


async def _opened(url: str, **kwargs: Any) -> AsyncStore:
    store = await clonestore.open_async(url, **kwargs)

    def wipe(sync: clonestore.Store) -> None:
        for spec in removal_order(sync.tables.values()):  # referencing rows first
            sync.backend.delete(spec, TRUE)

    await store.run_sync(wipe)
    return store


def test_async_store_offers_the_store_api() -> None:
    """Every public method of Store and of each repository exists on the AsyncStore side,
    awaitable where the synchronous one does I/O."""

    async def main() -> None:
        async with clonestore.open_async("memory://") as store:
            for name in ("health", "migrate", "migration_status", "export_user", "erase_user"):
                assert inspect.iscoroutinefunction(getattr(store, name)), name
            for attr in REPOSITORIES:
                sync_repo = getattr(store._store, attr)
                for name in dir(sync_repo):
                    if name.startswith("_") or not inspect.ismethod(getattr(sync_repo, name)):
                        continue
                    assert inspect.iscoroutinefunction(getattr(getattr(store, attr), name)), name

    _run(main())


def test_transaction_belongs_to_its_task(clonestore_url: str) -> None:
    """A task never sees another task's uncommitted write; a rolled-back one leaves nothing."""

    async def main() -> None:
        store = await _opened(clonestore_url)
        try:
            written = asyncio.Event()
            seen: list[int] = []

            async def writer() -> None:
                try:
                    async with store.transaction():
                        await store.users.create(email="tx@example.com", name="Tx")
                        written.set()
                        await asyncio.sleep(0.05)
                        raise RuntimeError("roll back")
                except RuntimeError:
                    pass

            async def reader() -> None:
                await written.wait()
                seen.append(await store.users.count())

            await asyncio.gather(writer(), reader())
            assert seen == [0]
            assert await store.users.count() == 0
            assert not store.in_transaction
        finally:
            await store.close()

    _run(main())


def test_task_started_inside_a_transaction_runs_outside_it(clonestore_url: str) -> None:
    """A task started inside a transaction (create_task, gather) is not in it, for the
    backend and for the plugins alike: its write commits on its own, survives the
    transaction's rollback, and clonestore_after_commit reports it, once. (On memory://
    and SQLite, one writer at a time, the child writes once the transaction is over: while
    it is open, the child would wait for the parent that waits for it.)"""
    committed: list[str] = []

    class Watch:
        @hookimpl
        def clonestore_after_commit(self, store: Any, ops: Any) -> None:
            committed.extend(op.action for op in ops)

    async def main() -> None:
        store = await _opened(clonestore_url, plugins=[Watch()])
        try:
            committed.clear()
            child_in_transaction: list[bool] = []

            concurrent_writers = clonestore_url.startswith("postgresql")
            parent_done = asyncio.Event()

            async def child() -> None:
                child_in_transaction.append(store.in_transaction)
                if not concurrent_writers:
                    await parent_done.wait()
                await store.users.create(email="child@example.com", name="Child")

            tasks: list[asyncio.Task[None]] = []

            async def parent() -> None:
                async with store.transaction():
                    await store.users.create(email="parent@example.com", name="Parent")
                    tasks.append(asyncio.create_task(child()))
                    if concurrent_writers:
                        await tasks[0]
                    else:
                        await asyncio.sleep(0)  # the child starts inside the transaction
                    raise RuntimeError("roll back")

            with pytest.raises(RuntimeError, match="roll back"):
                await parent()
            parent_done.set()
            (task,) = tasks
            await task
            assert child_in_transaction == [False]
            assert [u.email for u in await store.users.find_many()] == ["child@example.com"]
            assert committed == ["user.create"]
        finally:
            await store.close()

    _run(main())


def _one_connection(url: str) -> dict[str, Any]:
    """Options giving a pooled backend a single connection, so a connection not given
    back would leave the next call waiting for it, then failing."""
    if url.startswith(("postgresql", "sqlite")) and ":memory:" not in url:
        return {
            "pool_size": 1,
            "pool_timeout" if url.startswith("postgresql") else "busy_timeout": 2,
        }
    return {}


def test_cancelled_task_rolls_back_and_frees_the_store(clonestore_url: str) -> None:
    """A task cancelled inside a transaction rolls it back: nothing it wrote survives, and
    other tasks go on using the store (its one connection came back)."""

    async def main() -> None:
        store = await _opened(clonestore_url, **_one_connection(clonestore_url))
        try:
            inside = asyncio.Event()

            async def victim() -> None:
                async with store.transaction():
                    user = await store.users.create(email="gone@example.com", name="Gone")
                    await store.users.update(user.id, name="Still gone")
                    inside.set()
                    await asyncio.sleep(60)

            task = asyncio.create_task(victim())
            await inside.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await store.users.count() == 0
            assert await store.users.find_by_email("gone@example.com") is None
            for i in range(3):  # the store (and its pool) still serves
                await store.users.create(email=f"after{i}@example.com", name="After")
            assert await store.users.count() == 3
            health = await store.health()
            assert health["ok"]
            if "pool" in health:
                assert health["pool"]["in_use"] == 0
        finally:
            await store.close()

    _run(main())


def test_task_cancelled_while_its_statement_runs_rolls_back(postgres_url: str) -> None:
    """On PostgreSQL, a task cancelled while the server runs its statement (inside a
    transaction) rolls back: the row it wrote before is gone, and the store's single
    connection serves the next call."""
    from clonestore_peewee.sql._backend import NONE

    url = postgres_url

    async def main() -> None:
        store = await _opened(url, **_one_connection(url))
        try:
            running = asyncio.Event()

            def slow(sync: clonestore.Store) -> None:
                running.set()
                sync.backend.execute("SELECT pg_sleep(30)", (), NONE)  # type: ignore[attr-defined]

            async def victim() -> None:
                async with store.transaction():
                    await store.users.create(email="gone@example.com", name="Gone")
                    await store.run_sync(slow)

            task = asyncio.create_task(victim())
            await running.wait()
            await asyncio.sleep(0.2)  # the statement is on the server
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
            assert await asyncio.wait_for(store.users.count(), 10) == 0
            await store.users.create(email="after@example.com", name="After")
            assert [u.email for u in await store.users.find_many()] == ["after@example.com"]
        finally:
            await store.close()

    _run(main())


def test_errors_are_the_synchronous_classes() -> None:
    """An AsyncStore raises the synchronous API's error classes."""

    async def main() -> None:
        async with clonestore.open_async("memory://") as store:
            with pytest.raises(NotFound):
                await store.users.get("00000000-0000-4000-8000-000000000001")
            with pytest.raises(clonestore.ValidationError):
                await store.users.create(email="not an email", name="X")

    _run(main())


class _AsyncMemory:
    """A plugin offering an async-capable backend for its own scheme."""

    def __init__(self) -> None:
        self.opened: list[MemoryBackend] = []

    @hookimpl
    def clonestore_async_backends(self) -> dict[str, Any]:
        def factory(url: str, **options: Any) -> MemoryBackend:
            backend = MemoryBackend("memory://")
            self.opened.append(backend)
            return backend

        return {"asyncmem": factory}


def test_clonestore_async_backends() -> None:
    """open_async opens a scheme offered by clonestore_async_backends with that factory,
    called in the bridge; clonestore.open does not know the scheme."""
    plugin = _AsyncMemory()

    async def main() -> None:
        async with clonestore.open_async("asyncmem://", plugins=[plugin]) as store:
            user = await store.users.create(email="a@example.com", name="A")
            assert (await store.users.get(user.id)) == user
            assert store._store.backend is plugin.opened[0]

    _run(main())
    with pytest.raises(ConfigurationError):
        clonestore.open("asyncmem://", plugins=[plugin])


class _SyncOnlyMemory:
    """A third party's backend offered only for synchronous use."""

    @hookimpl
    def clonestore_backends(self) -> dict[str, Any]:
        return {"syncmem": lambda url, **options: MemoryBackend("memory://")}


def test_sync_only_backend_runs_on_worker_threads() -> None:
    """A backend without clonestore_async_backends works under open_async on worker threads:
    same results, transactions per task, rollback included."""

    async def main() -> None:
        async with clonestore.open_async("syncmem://", plugins=[_SyncOnlyMemory()]) as store:
            assert isinstance(store._store.backend, WorkerThreadBackend)
            user = await store.users.create(email="w@example.com", name="W")
            try:
                async with store.transaction():
                    await store.users.update(user.id, name="Changed")
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            assert (await store.users.get(user.id)).name == "W"

            async def rename(i: int) -> None:
                async with store.transaction():
                    await store.users.update(user.id, name=f"N{i}")

            await asyncio.gather(*(rename(i) for i in range(4)))
            assert (await store.users.get(user.id)).version == 5

    _run(main())


def test_readme_async_example_runs() -> None:
    """The README's open_async example runs as written and its assertions hold."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- async-example:start -->")[1].split("<!-- async-example:end -->")[0]
    code = block.split("```python\n", 1)[1].rsplit("```", 1)[0]
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_sync_and_async_stores_on_one_sqlite_file_share_its_lock(tmp_path: Any) -> None:
    """A synchronous and an async store on one SQLite file run the same SQLite library
    (pysqlite3's when installed), so they see each other's locks: while the synchronous
    store holds a write transaction, the async store's write waits and then fails with
    StorageUnavailable instead of writing beside it (two libraries in one process would
    each think they hold the file alone)."""
    url = "sqlite:///" + str(tmp_path / "shared.db")

    async def main() -> None:
        with clonestore.open(url) as sync:
            store = await clonestore.open_async(url, busy_timeout=0.3)
            try:
                with sync.transaction():
                    sync.users.create(email="sync@example.com", name="Sync")
                    with pytest.raises(clonestore.StorageUnavailable):
                        await store.users.create(email="async@example.com", name="Async")
                assert [u.email for u in await store.users.find_many()] == ["sync@example.com"]
                await store.users.create(email="async@example.com", name="Async")
                assert sync.users.count() == 2
            finally:
                await store.close()

    _run(main())
