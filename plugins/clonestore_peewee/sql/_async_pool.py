"""A small pool of async driver connections, for the backends under ``open_async``.

Checking a connection out or in costs no round trip and no extra task (the
drivers' own pools reset each connection with a query on release, and
``asyncio.wait_for`` makes a task per wait on Python 3.11): a caller waits
only when every connection is in use, for at most ``timeout`` seconds.
Connections are opened on demand, at most ``size`` at once. A connection given
back broken (or while its transaction is still open) is closed, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["ConnectionPool"]

C = TypeVar("C")


class ConnectionPool(Generic[C]):
    """At most ``size`` connections made by ``connect()``, handed out one caller at a time.

    :param connect: opens a connection.
    :param close: closes one.
    :param reusable: whether a connection given back may serve another caller.
    :param exhausted: the error raised when no connection became free within ``timeout``.
    :param stale_after: seconds after which an idle connection is closed instead of reused.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[C]],
        close: Callable[[C], Awaitable[Any]],
        reusable: Callable[[C], bool],
        *,
        size: int,
        timeout: float,
        exhausted: Callable[[], Exception],
        stale_after: float | None = None,
    ) -> None:
        self._connect = connect
        self._close = close
        self._reusable = reusable
        self.size = size
        self.timeout = timeout
        self._exhausted = exhausted
        self._stale_after = stale_after
        self._idle: deque[tuple[C, float]] = deque()
        self._waiters: deque[asyncio.Future[C | None]] = deque()
        self._count = 0  # connections open or being opened
        self._closing: set[asyncio.Task[Any]] = set()
        self.closed = False

    @property
    def in_use(self) -> int:
        """Connections checked out (or being opened)."""
        return self._count - len(self._idle)

    @property
    def idle(self) -> int:
        """Connections waiting in the pool."""
        return len(self._idle)

    async def acquire(self) -> C:
        """A connection for the caller alone until :meth:`release`."""
        if self.closed:
            raise RuntimeError("the connection pool is closed")
        while self._idle:
            conn, since = self._idle.pop()
            if self._stale_after is not None and time.monotonic() - since > self._stale_after:
                self._discard(conn)
                continue
            return conn
        if self._count >= self.size:
            handed = await self._wait()
            if handed is not None:
                return handed
        self._count += 1
        try:
            return await self._connect()
        except BaseException:
            self._count -= 1
            self._wake_one()
            raise

    async def _wait(self) -> C | None:
        """A connection given back by another caller, or None: open one yourself."""
        future: asyncio.Future[C | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            async with asyncio.timeout(self.timeout):
                return await future
        except BaseException as exc:
            if future in self._waiters:
                self._waiters.remove(future)
            elif future.done() and not future.cancelled() and future.exception() is None:
                handed = future.result()  # handed over as we gave up: pass it on
                if handed is not None:
                    self.release(handed)
                else:
                    self._wake_one()
            if isinstance(exc, TimeoutError):
                raise self._exhausted() from None
            raise

    def release(self, conn: C, *, reusable: bool = True) -> None:
        """Give a connection back (closed instead, when broken or not ``reusable``)."""
        if self.closed or not reusable or not self._reusable(conn):
            self._discard(conn)
            return
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(conn)
                return
        self._idle.append((conn, time.monotonic()))

    def _discard(self, conn: C) -> None:
        self._count -= 1
        task = asyncio.get_running_loop().create_task(self._close_quietly(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        self._wake_one()

    def _wake_one(self) -> None:
        # A slot is free: the first waiter opens a connection of its own.
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                return

    async def _close_quietly(self, conn: C) -> None:
        with contextlib.suppress(Exception):  # already broken or closing: no one to tell
            await self._close(conn)

    def expire_idle(self) -> None:
        """Close every idle connection (after a lost one: they are likely lost too)."""
        while self._idle:
            conn, _ = self._idle.popleft()
            self._discard(conn)

    async def close(self) -> None:
        """Close the idle connections now; those in use close when given back."""
        self.closed = True
        self.expire_idle()
        for future in self._waiters:
            if not future.done():
                future.set_exception(RuntimeError("the connection pool is closed"))
        self._waiters.clear()
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)

