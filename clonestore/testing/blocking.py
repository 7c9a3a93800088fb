"""The synchronous store API over an :class:`~clonestore.AsyncStore`, for running
synchronous tests through ``open_async``.

:func:`open_blocking` opens an ``AsyncStore`` on an event loop running in a
background thread and returns a :class:`BlockingStore`: it looks like a
:class:`~clonestore.Store`, but every call is the ``AsyncStore``'s, awaited on
that loop. So the unchanged contract tests and differential properties,
given a ``BlockingStore``, exercise the async path: its bridge, its backends
(aiosqlite, asyncpg), its transactions per task.

Each thread that calls a ``BlockingStore`` has a task of its own on the loop
that runs its calls in order: a transaction opened by a thread is that
task's, and threads that race each other are tasks that race each other.
Attributes the ``AsyncStore`` does not offer (``backend``, ``gateway``,
``hook``...) are the synchronous store's, called in the bridge.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from clonestore._async_store import AsyncRepository, AsyncStore, AsyncUserView, _Awaited, open_async
from clonestore._operations import Context

__all__ = ["BlockingStore", "open_blocking"]

_LOOP_LOCK = threading.Lock()
_LOOP: asyncio.AbstractEventLoop | None = None


def event_loop() -> asyncio.AbstractEventLoop:
    """The event loop the blocking stores of this process run on (in a daemon thread)."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None:
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="clonestore-blocking-loop", daemon=True
            ).start()
            _LOOP = loop
        return _LOOP


class _Driver:
    """One task on the loop that runs one thread's calls, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.stopped = False
        ready: concurrent.futures.Future[asyncio.Queue[Any]] = concurrent.futures.Future()
        self._done = asyncio.run_coroutine_threadsafe(self._serve(ready), loop)
        self._jobs = ready.result()

    async def _serve(self, ready: concurrent.futures.Future[asyncio.Queue[Any]]) -> None:
        jobs: asyncio.Queue[Any] = asyncio.Queue()
        ready.set_result(jobs)
        while True:
            job = await jobs.get()
            if job is None:
                return
            make, result = job
            try:
                value = make()
                if inspect.isawaitable(value):
                    value = await value
            except BaseException as exc:  # handed to the calling thread, which raises it
                result.set_exception(exc)
            else:
                result.set_result(value)

    def call(self, make: Callable[[], Any]) -> Any:
        result: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._jobs.put_nowait, (make, result))
        return result.result()

    def stop(self) -> None:
        self.stopped = True
        self._loop.call_soon_threadsafe(self._jobs.put_nowait, None)


class _Calls:
    """The drivers of one blocking store, one per calling thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._local = threading.local()
        self._all: list[_Driver] = []
        self._lock = threading.Lock()

    def __call__(self, make: Callable[[], Any]) -> Any:
        driver: _Driver | None = getattr(self._local, "driver", None)
        if driver is None or driver.stopped:
            driver = self._local.driver = _Driver(self.loop)
            with self._lock:
                self._all.append(driver)
        return driver.call(make)

    def stop(self) -> None:
        with self._lock:
            drivers, self._all = self._all, []
        for driver in drivers:
            driver.stop()


def _blocking(calls: _Calls, value: Any) -> Any:
    """``value`` with its awaitable methods made blocking (recursively for facades)."""
    if isinstance(value, _Awaited):
        return _BlockingFacade(calls, value)
    if isinstance(value, AsyncUserView):
        return _BlockingView(calls, value)
    return value


class _BlockingFacade:
    """A repository or service whose awaited methods are called and waited for."""

    def __init__(self, calls: _Calls, target: _Awaited) -> None:
        self._calls = calls
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        calls = self._calls

        def call(*args: Any, **kwargs: Any) -> Any:
            return calls(lambda: attr(*args, **kwargs))

        self.__dict__[name] = call
        return call


class _InBridge:
    """A synchronous object of the store (backend, gateway, hooks) used in the bridge:
    every call runs there, in the calling thread's task."""

    def __init__(self, calls: _Calls, astore: AsyncStore, target: Any) -> None:
        self._calls = calls
        self._astore = astore
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr) or isinstance(attr, type):
            return attr
        return _InBridge(self._calls, self._astore, attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        target = self._target
        result = self._calls(
            lambda: self._astore.run_sync(lambda _store: target(*args, **kwargs))
        )
        if hasattr(result, "__enter__") and hasattr(result, "__exit__"):
            return _InBridgeBlock(self._calls, self._astore, result)
        return result


class _InBridgeBlock(_InBridge):
    """A context manager of the synchronous store (``backend.transaction()``), entered
    and left in the bridge, in the calling thread's task."""

    def __enter__(self) -> Any:
        return self.__getattr__("__enter__")()

    def __exit__(self, *exc: Any) -> Any:
        return self.__getattr__("__exit__")(*exc)


class _BlockingView:
    """``store.for_user(id)`` of a :class:`BlockingStore`."""

    def __init__(self, calls: _Calls, view: AsyncUserView) -> None:
        self._calls = calls
        self._view = view
        self.user_id = view.user_id

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._view, name)
        if isinstance(value, AsyncRepository):
            return _BlockingFacade(self._calls, value)
        if inspect.iscoroutinefunction(value):
            return lambda *args, **kwargs: self._calls(lambda: value(*args, **kwargs))
        return value

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with _blocking_transaction(self._calls, self._view.transaction):
            yield


@contextmanager
def _blocking_transaction(calls: _Calls, open_block: Callable[[], Any]) -> Iterator[None]:
    block = calls(open_block)
    calls(block.__aenter__)
    try:
        yield
    except BaseException as exc:
        error = exc
        if not calls(lambda: block.__aexit__(type(error), error, error.__traceback__)):
            raise
    else:
        calls(lambda: block.__aexit__(None, None, None))


class BlockingStore:
    """A :class:`~clonestore.Store` look-alike whose every call goes through an
    :class:`~clonestore.AsyncStore` on an event loop (see the module docstring)."""

    def __init__(self, astore: AsyncStore, loop: asyncio.AbstractEventLoop) -> None:
        self.astore = astore
        self._calls = _Calls(loop)
        self._sync = astore._store

    def _await(self, make: Callable[[], Awaitable[Any]]) -> Any:
        return self._calls(make)

    def __getattr__(self, name: str) -> Any:
        try:
            value = getattr(self.astore, name)
        except AttributeError:
            value = getattr(self._sync, name)
            if callable(value) or name in ("backend", "gateway", "hook", "plugin_manager"):
                return _InBridge(self._calls, self.astore, value)
            return value
        if inspect.iscoroutinefunction(value):
            return lambda *args, **kwargs: self._await(lambda: value(*args, **kwargs))
        return _blocking(self._calls, value)

    @property
    def backend(self) -> Any:
        return _InBridge(self._calls, self.astore, self._sync.backend)

    @property
    def gateway(self) -> Any:
        return _InBridge(self._calls, self.astore, self._sync.gateway)

    @property
    def hook(self) -> Any:
        return _InBridge(self._calls, self.astore, self._sync.hook)

    @property
    def plugin_manager(self) -> Any:
        return _InBridge(self._calls, self.astore, self._sync.plugin_manager)

    @property
    def in_transaction(self) -> bool:
        return bool(self._calls(lambda: self.astore.in_transaction))

    @property
    def current_context(self) -> Context:
        context: Context = self._calls(lambda: self.astore.current_context)
        return context

    @property
    def closed(self) -> bool:
        return self.astore.closed

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The async transaction, opened and closed in the calling thread's task."""
        with _blocking_transaction(self._calls, self.astore.transaction):
            yield

    @contextmanager
    def context(self, **fields: Any) -> Iterator[Context]:
        """The async ``store.context(...)``, set in the calling thread's task."""
        block = self.astore.context(**fields)
        context = self._calls(block.__aenter__)
        try:
            yield context
        finally:
            self._calls(lambda: block.__aexit__(None, None, None))

    def for_user(self, user_id: str) -> Any:
        return _BlockingView(self._calls, self.astore.for_user(user_id))

    def close(self) -> None:
        """Close the async store, then stop this store's tasks."""
        try:
            self._await(self.astore.close)
        finally:
            self._calls.stop()

    def __enter__(self) -> BlockingStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BlockingStore over {self.astore!r}>"


def open_blocking(url: str, **kwargs: Any) -> BlockingStore:
    """``clonestore.open_async(url, **kwargs)`` on the shared event loop, as a
    :class:`BlockingStore`."""
    loop = event_loop()
    calls = _Calls(loop)
    try:
        astore: AsyncStore = calls(lambda: open_async(url, **kwargs))
    finally:
        calls.stop()
    return BlockingStore(astore, loop)
