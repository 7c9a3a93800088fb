"""A synchronous backend under ``open_async``: its calls run on worker threads.

A backend plugin that offers a scheme only through ``clonestore_backends`` (a
third party's that blocks on I/O) still opens under
:func:`clonestore.open_async`: the store wraps it in a
:class:`WorkerThreadBackend`, which runs each SPI call on a thread pool and
awaits the result, so the event loop never blocks. A transaction runs on one
thread of its own from start to end (a synchronous backend keeps its
transaction per thread), so each task's transaction is its own, as with any
async-capable backend.

It costs a thread hop per call and a thread per open transaction; a backend
that wants neither offers ``clonestore_async_backends`` (see
:mod:`clonestore.bridge`).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

from clonestore.bridge import TaskLocal, await_
from clonestore.spi import Backend

__all__ = ["WorkerThreadBackend"]


def _run_on(executor: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await_(loop.run_in_executor(executor, partial(context.run, fn, *args)))


class _Pin:
    """A task's own thread while it is inside a transaction."""

    def __init__(self) -> None:
        self.executor: ThreadPoolExecutor | None = None
        self.depth = 0


class WorkerThreadBackend:
    """Serves a synchronous :class:`~clonestore.spi.Backend` to the bridge: every call
    on a worker thread, a transaction's calls on one thread of its own."""

    def __init__(self, backend: Backend, executor: ThreadPoolExecutor) -> None:
        self.backend = backend
        self.name = backend.name
        self.capabilities = backend.capabilities
        self._executor = executor
        self._pins: TaskLocal[_Pin] = TaskLocal(_Pin)
        self._closed = False

    @classmethod
    def opener(cls, factory: Callable[..., Backend]) -> Callable[..., WorkerThreadBackend]:
        """A factory that opens ``factory``'s backend on a worker thread, wrapped."""

        def open_backend(url: str, **options: Any) -> WorkerThreadBackend:
            executor = ThreadPoolExecutor(thread_name_prefix="clonestore-worker")
            try:
                backend = _run_on(executor, partial(factory, url, **options))
            except BaseException:
                executor.shutdown(wait=False)
                raise
            return cls(backend, executor)

        return open_backend

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._closed:
            return fn(*args)  # a closed backend only raises its closed error: no I/O
        pin = self._pins.get()
        return _run_on(pin.executor or self._executor, fn, *args)

    def __getattr__(self, name: str) -> Any:
        # Every SPI method and optional capability of the backend, run on a worker.
        attr = getattr(self.backend, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(partial(attr, *args, **kwargs))

        return call

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The backend's transaction, entered, used and left on one thread."""
        pin = self._pins.get()
        if pin.depth == 0:
            pin.executor = ThreadPoolExecutor(1, thread_name_prefix="clonestore-transaction")
        pin.depth += 1
        try:
            block = self.backend.transaction()
            self._call(block.__enter__)
            try:
                yield
            except BaseException as exc:
                if not self._call(block.__exit__, type(exc), exc, exc.__traceback__):
                    raise
            else:
                self._call(block.__exit__, None, None, None)
        finally:
            pin.depth -= 1
            if pin.depth == 0 and pin.executor is not None:
                pin.executor.shutdown(wait=False)
                pin.executor = None

    def close(self) -> None:
        """Close the backend, then the workers. Idempotent."""
        if self._closed:
            return
        try:
            self._call(self.backend.close)
        finally:
            self._closed = True
            self._executor.shutdown(wait=False)

    def __repr__(self) -> str:
        return f"<WorkerThreadBackend {self.backend!r}>"
