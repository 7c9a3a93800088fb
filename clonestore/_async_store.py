"""``open_async`` and :class:`AsyncStore`: the same store, awaited.

An :class:`AsyncStore` is a :class:`~clonestore.Store` (the same repositories,
plugins, transactions and errors, written once) whose every call runs in the
greenlet bridge of :mod:`clonestore.bridge` and whose backend awaits its I/O
at the driver (asyncpg, aiosqlite) instead of blocking the event loop::

    async with clonestore.open_async("postgresql://app@db/clones") as store:
        user = await store.users.create(email="ada@example.com", name="Ada")
        async with store.transaction():
            session = await store.sessions.create(user_id=user.id, clone_id=user.id)
            await store.sessions.add_turn(session.id, asr_latency_ms=12)

Every repository method, ``health()``, ``migrate()``, ``export_user()``,
``erase_user()``, ``close()`` and every method of a plugin's service
(``store.cache``, ``store.ratelimit``, ``store.audit``) takes the arguments of
the synchronous API and returns an awaitable of its result, raising its errors.
``transaction()`` is ``async with``; ``context()`` is ``with`` or ``async
with``; ``for_user()`` returns a view at once (it does no I/O) whose
repositories are awaited.

Transactions and the ``context()`` follow asyncio tasks: a transaction is the
task's that opened it, and a task started inside it (``asyncio.create_task``,
``gather``) runs outside it, on its own connection. Concurrent tasks run
concurrently, each on a pooled connection.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from clonestore._opening import backend_factories, default_url, open_store
from clonestore._operations import Context
from clonestore._store import Store
from clonestore._worker_thread import WorkerThreadBackend
from clonestore.async_types import (
    AsyncAuditService,
    AsyncCacheService,
    AsyncCatalogues,
    AsyncRateLimitService,
    AsyncRepositories,
)
from clonestore.bridge import run_sync
from clonestore.errors import ValidationError
from clonestore.maintenance import MaintenanceReport
from clonestore.spi import Backend

__all__ = [
    "AsyncRepository",
    "AsyncStore",
    "AsyncTransaction",
    "AsyncUserView",
    "open_async",
]

T = TypeVar("T")


def _bridged_factories(pm: pluggy.PluginManager) -> dict[str, Callable[..., Backend]]:
    """The backends an :class:`AsyncStore` runs in the bridge: async-capable ones
    (``clonestore_async_backends``), others on worker threads. The store's unit of
    work keeps transactions in a context variable, so per asyncio task."""
    factories: dict[str, Callable[..., Backend]] = {
        scheme: WorkerThreadBackend.opener(factory)
        for scheme, factory in backend_factories(pm).items()
    }
    native: dict[str, Callable[..., Backend]] = {}
    for offered in pm.hook.clonestore_async_backends():
        for scheme, factory in offered.items():
            native.setdefault(scheme, factory)
    factories.update(native)
    return factories


class _Awaited:
    """The awaitable face of a synchronous object: each public method, called, returns
    an awaitable of its result (run in the bridge); other attributes read through."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name.startswith("_") or not callable(attr) or isinstance(attr, type):
            return attr

        @functools.wraps(attr)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await run_sync(attr, *args, **kwargs)

        self.__dict__[name] = call
        return call

    def __repr__(self) -> str:
        return f"<awaitable {self._target!r}>"


class AsyncRepository(_Awaited):
    """A repository whose methods are awaited: ``await store.users.get(id)``.

    Same names, arguments, results and errors as the synchronous repository
    (:class:`clonestore.Repository` and its subclasses); typed by the protocols of
    :mod:`clonestore.async_types` (``store.users`` is an ``AsyncUserRepository``).
    """


class AsyncTransaction:
    """``async with store.transaction():`` all-or-nothing, nested blocks savepoints.

    The block is the calling task's. A task cancelled inside it rolls it back
    (the cancellation propagates) and gives its connection back.
    """

    def __init__(self, open_block: Callable[[], AbstractContextManager[None]]) -> None:
        self._open_block = open_block
        self._block: AbstractContextManager[None] | None = None

    async def __aenter__(self) -> None:
        if self._block is not None:
            raise RuntimeError("this transaction block is already open; call transaction() again")
        block = self._open_block()
        await run_sync(block.__enter__)
        self._block = block

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        block, self._block = self._block, None
        assert block is not None
        return bool(await run_sync(block.__exit__, exc_type, exc, tb))


class _ContextBlock:
    """``store.context(...)`` as ``with`` or ``async with`` (it does no I/O)."""

    def __init__(self, block: AbstractContextManager[Context]) -> None:
        self._block = block

    def __enter__(self) -> Context:
        return self._block.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._block.__exit__(*exc)

    async def __aenter__(self) -> Context:
        return self._block.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self._block.__exit__(*exc)


def _repositories(owner: Any, source: Any, names: Sequence[str]) -> None:
    for name in names:
        setattr(owner, name, AsyncRepository(getattr(source, name)))


class AsyncUserView(AsyncRepositories):
    """``store.for_user(user_id)`` under ``open_async``: the repositories limited to one
    user's rows (see :mod:`clonestore._tenancy`), awaited."""

    def __init__(self, view: Any) -> None:
        from clonestore.repositories import REPOSITORIES

        self.view = view
        self.user_id: str = view.user_id
        _repositories(self, view, list(REPOSITORIES))

    async def export_user(self, user_id: str | None = None) -> dict[str, Any]:
        """Everything stored about the owner."""
        result: dict[str, Any] = await run_sync(self.view.export_user, user_id)
        return result

    async def erase_user(self, user_id: str | None = None) -> dict[str, int]:
        """Erase the owner."""
        result: dict[str, int] = await run_sync(self.view.erase_user, user_id)
        return result

    def transaction(self) -> AsyncTransaction:
        """The store's transaction, ``async with``."""
        return AsyncTransaction(self.view.transaction)

    def __repr__(self) -> str:
        return f"<clonestore.AsyncUserView user_id={self.user_id}>"


class AsyncStore(AsyncRepositories, AsyncCatalogues):
    """An open clonestore for asyncio code: :class:`~clonestore.Store`'s API, awaited.

    Made by :func:`open_async`. Safe to share between tasks; close it (or use
    ``async with``) when done.
    """

    #: The built-in plugins' services, awaited, when the store was opened with them.
    cache: AsyncCacheService
    ratelimit: AsyncRateLimitService
    audit: AsyncAuditService

    def __init__(self, store: Store) -> None:
        from clonestore.repositories import CATALOGUES, REPOSITORIES

        self._store = store
        self.url = store.url
        self.clock = store.clock
        self.tables = store.tables
        #: The longest vector the store keeps (see :attr:`Store.max_vector_dimensions`).
        self.max_vector_dimensions = store.max_vector_dimensions
        self.options = store.options
        _repositories(self, store, [*REPOSITORIES, *CATALOGUES])

    if not TYPE_CHECKING:  # type checkers see only the declared attributes: a typo is an error

        def __getattr__(self, name: str) -> Any:
            # Services attached by plugins (store.cache, store.ratelimit, store.audit), awaited;
            # the synchronous store's error (naming the plugin to load) otherwise.
            store = self.__dict__.get("_store")
            if store is not None and name in store.services:
                service = _Awaited(store.services[name])
                self.__dict__[name] = service
                return service
            if store is not None and not name.startswith("_") and name not in dir(store):
                try:
                    getattr(store, name)
                except AttributeError as exc:
                    if "plugin" in str(exc):  # names the plugin to load
                        raise AttributeError(str(exc), name=name, obj=self) from None
            raise AttributeError(
                f"{type(self).__name__!s} has no attribute {name!r}", name=name, obj=self
            )

    @property
    def services(self) -> dict[str, Any]:
        """Every plugin's service by name (synchronous objects: call them in :meth:`run_sync`)."""
        return self._store.services

    @property
    def hook(self) -> Any:
        """The store's hook relay (synchronous hooks; call them from ``run_sync``)."""
        return self._store.hook

    @property
    def plugin_manager(self) -> Any:
        """The store's own pluggy plugin manager."""
        return self._store.plugin_manager

    # ------------------------------------------------------------------ context and transactions

    def context(
        self,
        *,
        actor_id: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
    ) -> _ContextBlock:
        """Who is acting, for plugins (audit) to see, in this task: ``with`` or ``async with``."""
        block = self._store.context(
            actor_id=actor_id, ip_address=ip_address, user_agent=user_agent, request_id=request_id
        )
        return _ContextBlock(block)

    @property
    def current_context(self) -> Context:
        """The context set by the innermost ``store.context(...)`` block of this task."""
        return self._store.current_context

    @property
    def in_transaction(self) -> bool:
        """Whether the calling task is inside ``store.transaction()``."""
        return self._store.in_transaction

    def transaction(self) -> AsyncTransaction:
        """``async with store.transaction():`` all-or-nothing on every backend; nested
        blocks are savepoints. ``clonestore_after_commit`` runs when the outermost commits."""
        self._store._check_open()
        return AsyncTransaction(self._store.transaction)

    def for_user(self, user_id: str) -> AsyncUserView:
        """The repositories limited to one user's rows (no I/O: returned at once)."""
        return AsyncUserView(self._store.for_user(user_id))

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(store, *args, **kwargs)`` with the synchronous :class:`~clonestore.Store`
        underneath, in the bridge: for code written against the synchronous API
        (it must not block on I/O of its own)."""
        return await run_sync(fn, self._store, *args, **kwargs)

    # ------------------------------------------------------------------ lifecycle

    async def health(self) -> dict[str, Any]:
        """``ok``, ``backend``, ``latency_ms`` and backend details; never raises."""
        return await run_sync(self._store.health)

    async def migrate(self) -> list[str]:
        """Apply pending migrations; the names applied (none on memory://)."""
        return await run_sync(self._store.migrate)

    async def migration_status(self) -> list[dict[str, Any]]:
        """Every known migration with ``name`` and ``applied`` (empty on memory://)."""
        return await run_sync(self._store.migration_status)

    async def export_user(self, user_id: str) -> dict[str, Any]:
        """Everything stored about a user, plugins included, as JSON-ready data."""
        return await run_sync(self._store.export_user, user_id)

    async def erase_user(self, user_id: str) -> dict[str, int]:
        """Remove everything about a user (right to be forgotten); rows removed per table."""
        return await run_sync(self._store.erase_user, user_id)

    async def dump(self, file: str | os.PathLike[str], **options: Any) -> dict[str, Any]:
        """:meth:`Store.dump`, awaited: every table to ``file``."""
        return await run_sync(self._store.dump, file, **options)

    async def load(self, file: str | os.PathLike[str], **options: Any) -> dict[str, Any]:
        """:meth:`Store.load`, awaited: a dump into this store."""
        return await run_sync(self._store.load, file, **options)

    async def maintain(self, **options: Any) -> MaintenanceReport:
        """Run the due maintenance tasks (the keywords of ``Store.maintain``)."""
        return await run_sync(lambda: self._store.maintain(**options))

    async def close(self) -> None:
        """Close the store and its backend (its connection pool). Idempotent."""
        await run_sync(self._store.close)

    @property
    def closed(self) -> bool:
        return self._store.closed

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return repr(self._store).replace("clonestore.Store", "clonestore.AsyncStore", 1)


class _Opening:
    """What :func:`open_async` returns: ``await`` it for the store, or ``async with`` it
    to close the store at the end of the block."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._open_store = open_store
        self._store: AsyncStore | None = None

    async def _open(self) -> AsyncStore:
        return AsyncStore(await run_sync(self._open_store))

    def __await__(self) -> Generator[Any, None, AsyncStore]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncStore:
        self._store = await self._open()
        return self._store

    async def __aexit__(self, *exc: object) -> None:
        if self._store is not None:
            await self._store.close()


def open_async(
    url: str | None = None,
    *,
    plugins: Sequence[str | object] = (),
    clock: Callable[[], datetime] | None = None,
    id_factory: Callable[[], str] | None = None,
    create_tables: bool = True,
    **options: Any,
) -> _Opening:
    """Open an :class:`AsyncStore` on ``url``: ``store = await open_async(url)`` or
    ``async with open_async(url) as store:``.

    The arguments are :func:`clonestore.open`'s. ``memory://``, ``sqlite://``
    (aiosqlite) and ``postgresql://`` (asyncpg) never block the event loop; a
    backend offered only for synchronous use runs on worker threads
    (:mod:`clonestore._worker_thread`). Needs ``pip install 'clonestore[async]'``.
    """
    if url is None:
        url = default_url()
    if not isinstance(url, str):
        raise ValidationError(f"url must be a string, got {type(url).__name__}")
    return _Opening(
        functools.partial(
            open_store,
            url,
            plugins=plugins,
            clock=clock,
            id_factory=id_factory,
            create_tables=create_tables,
            options=options,
            factories=_bridged_factories,
        )
    )
