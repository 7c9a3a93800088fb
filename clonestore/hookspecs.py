"""Every hook of clonestore, and nothing else.

Plugins implement these with the ``clonestore.hookimpl`` marker. Each
hookspec's docstring is its contract. Built-in features (backends, cache,
rate limit, audit) are plugins using exactly these hooks.

Writes and reads pass through one gateway, so plugins see all of them, bulk
operations included. An :class:`~clonestore._operations.Operation` describes
each one.
"""

from __future__ import annotations

# A hookspec body is only its docstring (the contract); pluggy never calls it.
# mypy: disable-error-code="empty-body"
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pluggy

from clonestore._operations import Operation
from clonestore._store import Store
from clonestore.maintenance import MaintenanceTask
from clonestore.spi import BackendFactory, TableSpec

hookspec = pluggy.HookspecMarker("clonestore")


@hookspec
def clonestore_backends() -> Mapping[str, BackendFactory]:
    """Offer storage backends.

    :return: a mapping of URL scheme (``"memory"``, ``"sqlite"``...) to a factory
        called as ``factory(url, **options)`` that returns a
        :class:`clonestore.spi.Backend`. The first plugin offering a scheme wins.
    """


@hookspec
def clonestore_async_backends() -> Mapping[str, BackendFactory]:
    """Offer storage backends that run under :func:`clonestore.open_async` without
    blocking the event loop.

    Such a backend implements the same :class:`clonestore.spi.Backend` protocol,
    with the same meaning; it is called inside the greenlet bridge
    (:mod:`clonestore.bridge`): it waits for I/O with
    :func:`clonestore.bridge.await_`, keeps per-caller state per asyncio task
    (:class:`clonestore.bridge.TaskLocal`) and holds locks that tasks await
    (:class:`clonestore.bridge.RLock`). A scheme offered only by
    ``clonestore_backends`` still opens under ``open_async``: its backend runs
    on worker threads (:class:`clonestore._worker_thread.WorkerThreadBackend`).

    :return: a mapping of URL scheme to a factory called as
        ``factory(url, **options)`` inside the bridge; it returns the backend.
        The first plugin offering a scheme wins.
    """


@hookspec
def clonestore_shared_stores(kind: str) -> Mapping[str, Callable[..., Any]] | None:
    """Offer storage, outside the store's backend, for state a feature plugin shares
    between processes (the cache's second level, the rate limiter's counters).

    A feature plugin configured with a URL (``CachePlugin(l2="redis://...")``,
    ``RateLimitPlugin(storage="redis://...")``) asks every plugin with this hook
    and takes the first factory offered for the URL's scheme. Plugins offering
    this hook are always loaded, like those offering backends.

    :param kind: what the asking plugin needs, named after it: ``"cache.l2"``
        (an object implementing ``clonestore_cache.L2Store``) or
        ``"ratelimit.counters"`` (``clonestore_ratelimit.CounterStore``). A
        plugin that does not serve ``kind`` returns None.
    :return: a mapping of URL scheme to a factory called as ``factory(url)``
        that returns an object implementing the protocol of ``kind``; it
        raises ``ConfigurationError`` for a URL it cannot use. Such an object
        raises ``StorageUnavailable`` when its server cannot be reached, and no
        other exception for that, so the asking plugin can degrade as it
        documents.
    """


@hookspec
def clonestore_tables() -> Sequence[TableSpec]:
    """Declare tables a plugin needs (cache entries, counters, audit rows).

    :return: table specs; the store creates them with the domain tables.
    """


@hookspec
def clonestore_migrations() -> Mapping[str, str]:
    """Declare the versioned migrations of the plugin's tables.

    :return: plugin name -> the importable package holding its numbered migration
        scripts (``{"audit": "clonestore_audit.migrations"}``). Backends with
        migrations apply them after the core's (``clonestore migrate --plugins
        audit``, ``store.migrate()``, or on open unless ``create_tables=False``);
        see ``docs/plugins.md`` for how a script declares its frozen tables.
    """


@hookspec
def clonestore_required_capabilities() -> Sequence[str]:
    """Declare the backend capabilities a plugin cannot work without.

    Checked once, when the store opens (before any table is created): a backend
    that does not offer one of them (:func:`clonestore.spi.capabilities_of`) makes
    ``clonestore.open()`` fail with a :class:`~clonestore.ConfigurationError`
    naming the plugin, the capability and the backend. A table option that is a
    guarantee (``append_only``) is required by the plugin declaring the table,
    without being listed here.

    :return: names from :data:`clonestore.spi.CAPABILITIES`.
    """


@hookspec
def clonestore_store_opened(store: Store) -> None:
    """The store is open and its tables exist: attach services (``store.cache``...).

    :param store: the store being opened.
    """


@hookspec
def clonestore_store_closed(store: Store) -> None:
    """The store is closing; release what the plugin holds. Called once.

    :param store: the store being closed; its backend is still usable.
    """


@hookspec
def clonestore_before_write(store: Store, op: Operation) -> None:
    """A write is about to happen; raise a clonestore error to refuse it.

    Runs before anything is written, inside the write's transaction. One exception:
    ``sessions.add_turn`` (an update and an insert, ``update_and_insert``) on a backend
    that makes both in one statement (capability ``update_and_insert_many``) calls it
    for the insert after that statement, still inside the transaction: a refusal
    undoes both.
    :param store: the store.
    :param op: the write (``op.action`` such as ``"user.create"``, ``op.table``,
        ``op.changes``...).
    """


@hookspec
def clonestore_after_write(store: Store, op: Operation, result: Any) -> None:
    """A write succeeded; runs inside the same transaction (an error rolls it back).

    :param store: the store.
    :param op: the write.
    :param result: what the SPI call returned: for ``update`` the changed rows (a
        list of row dicts, possibly empty), for ``upsert`` the stored row, for
        ``delete`` how many rows were removed, for ``insert`` and ``insert_many``
        None (the rows written are ``op.changes`` and ``op.rows``).
    """


@hookspec
def clonestore_write_failed(store: Store, op: Operation, error: BaseException) -> None:
    """A write was refused or failed; called once per failed write, outside any
    transaction, so what the hook writes is kept.

    A write outside ``store.transaction()`` is reported as soon as its own
    transaction has rolled back. A write inside one (including the implicit
    transaction of a repository operation such as ``documents.create``) is
    reported when the outermost transaction ends, whether it commits (the
    caller caught the error) or rolls back.

    :param store: the store.
    :param op: the write that failed.
    :param error: the clonestore error the caller will see.
    """


@hookspec
def clonestore_before_commit(store: Store, ops: Sequence[Operation]) -> None:
    """The outermost transaction is about to commit; ``ops`` are its writes in order.

    Called inside the transaction, after its last write: what the hook writes
    (straight to ``store.backend``) commits with it, and an error raised here
    rolls the whole transaction back. Writes undone by a rolled-back savepoint
    are not in ``ops``; not called when nothing was written. The audit plugin
    appends the transaction's entries here, one append per transaction.
    :param store: the store.
    :param ops: the writes about to commit.
    """


@hookspec
def clonestore_after_commit(store: Store, ops: Sequence[Operation]) -> None:
    """The outermost transaction committed; ``ops`` are its writes in order.

    Never called after a rollback; writes undone by a rolled-back savepoint
    are not in ``ops``. Errors raised here propagate, but the data is committed.
    :param store: the store.
    :param ops: the committed writes.
    """


@hookspec(firstresult=True)
def clonestore_read(store: Store, op: Operation, fetch: Callable[[], Any]) -> Any:
    """A read is about to reach the backend; return a result to answer it instead.

    The first non-None result wins; when every plugin passes, the backend answers.
    :param store: the store.
    :param op: the read (``op.action`` such as ``"user.get"``, ``op.kind``,
        ``op.table``, ``op.key``).
    :param fetch: runs the read on the backend and returns its result; a
        read-through cache calls it on a miss and returns (and keeps) what it gives.
        When a plugin called ``fetch`` and every plugin returns None, the fetched
        result is the answer: the backend is not asked again.
    :return: what the backend would have returned (``get``: a row dict; ``select``:
        a list of rows), or None to pass.
    """


@hookspec
def clonestore_export_user(store: Store, user_id: str) -> Mapping[str, Any]:
    """Contribute to ``store.export_user``: what this plugin holds about the user.

    :return: JSON-ready sections, keyed by a name unique to the plugin.
    """


@hookspec
def clonestore_erase_user(store: Store, user_id: str) -> None:
    """Erase what this plugin holds about the user (``store.erase_user``).

    Runs inside the erasure's transaction, before the user's rows are removed.
    """


@hookspec
def clonestore_maintenance_tasks(store: Store) -> Sequence[MaintenanceTask]:
    """Contribute upkeep that ``store.maintain()`` (``clonestore maintain``) runs.

    Each :class:`~clonestore.maintenance.MaintenanceTask` removes what is due in
    batches of at most ``run.batch_size`` rows, one transaction each, checks
    ``run.time_left()`` between batches and counts them with ``run.advance(n)``;
    it uses the store's services and backend, never an engine of its own. Runs
    outside any transaction, under the store's maintenance lease (one process at
    a time).

    :param store: the open store.
    :return: the plugin's tasks, each with a name unique among all tasks
        (``"cache.expired"``) and its default ``retention``.
    """
