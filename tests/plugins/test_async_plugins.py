"""Cache, rate limit and audit, unchanged, under open_async: audit sees the task's context
and no rolled-back write, a rate limit is exact for tasks racing in several processes, and
on PostgreSQL another process's write reaches an async store's cache by NOTIFY."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

import clonestore

LIMIT = 20
TASKS = 15
PROCESSES = 3


def test_audit_under_open_async(store_factory: Any) -> None:
    """Writes in a task's store.context are audited with its actor; a rolled-back
    transaction leaves no success entry."""
    store_factory(plugins=["audit"])  # the tables, emptied through the kit's guard
    url = store_factory.url

    async def main() -> None:
        async with clonestore.open_async(url, plugins=["audit"]) as store:
            async with store.context(actor_id="00000000-0000-4000-8000-0000000000aa"):
                user = await store.users.create(email="audited@example.com", name="A")
            try:
                async with store.transaction():
                    await store.users.update(user.id, name="Never")
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            entries = await store.audit.find_by_user(user.id)
            assert [(e.action, e.result) for e in entries] == [("user.create", "success")]
            assert entries[0].actor_id == "00000000-0000-4000-8000-0000000000aa"

    asyncio.run(main())


def _racing_process(url: str, user_id: str, queue: Any) -> None:
    async def main() -> list[bool]:
        async with clonestore.open_async(url, plugins=["ratelimit"]) as store:
            decisions = await asyncio.gather(
                *(
                    store.ratelimit.check_and_increment(user_id, "chat", LIMIT, 3600)
                    for _ in range(TASKS)
                )
            )
            return [d.allowed for d in decisions]

    try:
        queue.put(("ok", asyncio.run(main())))
    except Exception as exc:
        queue.put(("error", repr(exc)))


def test_rate_limit_is_exact_for_tasks_in_several_processes(store_factory: Any) -> None:
    """3 processes x 15 racing tasks against a limit of 20: exactly 20 admitted."""
    store = store_factory(plugins=["ratelimit"])
    if store.backend.name == "memory":  # one process's storage: the tasks race in one
        results = []
        _racing_process(store_factory.url, "00000000-0000-4000-8000-0000000000bb", _List(results))
        assert results[0][0] == "ok"
        assert sum(results[0][1]) == min(LIMIT, TASKS)
        return
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    user_id = "00000000-0000-4000-8000-0000000000bb"
    workers = [
        context.Process(target=_racing_process, args=(store_factory.url, user_id, queue))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert all(status == "ok" for status, _ in outcomes), outcomes
    assert sum(sum(allowed) for _, allowed in outcomes) == LIMIT


class _List:
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def put(self, item: Any) -> None:
        self.items.append(item)


def _update_elsewhere(url: str, user_id: str, queue: Any) -> None:
    with clonestore.open(url, plugins=["cache"]) as store:
        store.users.update(user_id, name="Changed elsewhere")
    queue.put("done")


def test_cache_of_an_async_store_hears_other_processes(store_factory: Any) -> None:
    """On PostgreSQL, a write committed by another process invalidates the async store's
    cache by LISTEN/NOTIFY; elsewhere the cache serves reads and sees its own writes."""
    sync = store_factory(plugins=["cache"])
    postgres = sync.backend.name == "postgresql"

    async def main() -> None:
        async with clonestore.open_async(store_factory.url, plugins=["cache"]) as store:
            deadline = time.monotonic() + 10
            while not store.cache.notified and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            user = await store.users.create(email="cached@example.com", name="Before")
            assert (await store.users.get(user.id)).name == "Before"
            assert (await store.users.get(user.id)).name == "Before"  # from the cache
            if not postgres:
                await store.users.update(user.id, name="Mine")
                assert (await store.users.get(user.id)).name == "Mine"
                return
            context = multiprocessing.get_context("spawn")
            queue = context.Queue()
            worker = context.Process(
                target=_update_elsewhere, args=(store_factory.url, user.id, queue)
            )
            worker.start()
            assert await asyncio.to_thread(queue.get, True, 60) == "done"
            worker.join(30)
            deadline = time.monotonic() + 5
            while (await store.users.get(user.id)).name != "Changed elsewhere":
                assert time.monotonic() < deadline, "the other process's write was never seen"
                await asyncio.sleep(0.01)

    asyncio.run(main())
