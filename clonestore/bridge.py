"""The greenlet bridge: the synchronous core, run on an event loop.

Repositories, plugins and backends are synchronous code, written once. Under
:func:`clonestore.open_async` every call runs that code in a greenlet started
by :func:`run_sync`; where a backend would block on I/O it calls
:func:`await_` with the driver's awaitable instead. ``await_`` suspends the
greenlet and hands the awaitable to the asyncio task, which awaits it on the
event loop and resumes the greenlet with the result (or the exception). This
is the technique of SQLAlchemy's asyncio extension and of Peewee's
``playhouse.pwasyncio``, with the same switching protocol, so Peewee's own
``await_`` works inside :func:`run_sync` too.

Under ``open_async`` "the caller" is the asyncio task, not the thread: many
tasks share one thread. State a backend keeps per caller lives in a
:class:`TaskLocal` (or :class:`PerTask`), and a lock held across I/O is an
:class:`RLock`: a task waiting for it awaits, so the event loop runs on.

Needs the ``greenlet`` package (``pip install 'clonestore[async]'``); without
it nothing is ever inside the bridge and the helpers act per thread.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar, cast

try:
    import greenlet as _greenlet
except ImportError:  # pragma: no cover - installed with clonestore[async]
    _greenlet = None
getcurrent: Any = _greenlet.getcurrent if _greenlet is not None else None

__all__ = [
    "NotInBridge",
    "PerTask",
    "RLock",
    "TaskLocal",
    "await_",
    "caller",
    "in_bridge",
    "run_sync",
    "task_or_thread",
]

T = TypeVar("T")


class NotInBridge(RuntimeError):
    """``await_`` was called outside :func:`run_sync` (synchronous code that expected
    to run under ``open_async`` was called directly)."""


_Bridged: Any = None
if _greenlet is not None:

    class _Bridged(_greenlet.greenlet):  # type: ignore[no-redef,misc]
        """A greenlet started by :func:`run_sync` (its type is how the bridge is recognised)."""

        __slots__ = ()


def in_bridge() -> bool:
    """Whether the calling code runs inside :func:`run_sync` (may use :func:`await_`)."""
    return getcurrent is not None and type(getcurrent()) is _Bridged


class _Outcome:
    """How a call ended, passed from the greenlet back to :func:`run_sync`."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any, error: BaseException | None) -> None:
        self.value = value
        self.error = error


def _serve(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A bridge greenlet's life: run one call, report it, wait for the next."""
    while True:
        try:
            outcome = _Outcome(fn(*args, **kwargs), None)
        except BaseException as exc:
            outcome = _Outcome(None, exc)
        del fn, args, kwargs
        parent = getcurrent().parent
        fn, args, kwargs = parent.switch(outcome)


# Idle bridge greenlets of this thread: making one costs several microseconds,
# switching to one a fraction of one.
_idle = threading.local()
_MAX_IDLE = 64


async def run_sync(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run synchronous ``fn(*args, **kwargs)`` on the event loop, awaiting what it
    passes to :func:`await_`; its result or exception.

    The code runs in the calling task's context (contextvars), so what it sets
    there stays set for the task, as in ordinary async code.
    """
    if _Bridged is None:  # pragma: no cover
        raise ImportError("open_async needs greenlet: pip install 'clonestore[async]'")
    parent = getcurrent()
    try:
        idle: list[Any] = _idle.greenlets
    except AttributeError:
        idle = _idle.greenlets = []
    if idle:
        child = idle.pop()
        child.parent = parent
    else:
        child = _Bridged(_serve, parent)
    child.gr_context = parent.gr_context
    out = child.switch(fn, args, kwargs)
    while type(out) is not _Outcome:
        try:
            value = await out
        except BaseException as exc:  # cancellation too: the sync code cleans up
            out = child.throw(exc)
        else:
            out = child.switch(value)
    child.gr_context = None
    if len(idle) < _MAX_IDLE:
        idle.append(child)
    if out.error is not None:
        error, out.error = out.error, None
        raise error
    return cast(T, out.value)


def await_(awaitable: Awaitable[T]) -> T:
    """From synchronous code inside :func:`run_sync`: the result of ``awaitable``,
    awaited by the task on its event loop (the greenlet is suspended meanwhile)."""
    current: Any = getcurrent() if getcurrent is not None else None
    if type(current) is not _Bridged:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # no "never awaited" warning on top of this error
        raise NotInBridge(
            "this store's backend awaits I/O and must be called through clonestore.open_async()"
        )
    parent = current.parent
    assert parent is not None
    return cast(T, parent.switch(awaitable))


def caller() -> object:
    """Who is calling: the asyncio task inside the bridge, else the thread's identity."""
    if in_bridge():
        task = asyncio.current_task()
        if task is not None:
            return task
    return threading.get_ident()


def _current_task() -> asyncio.Task[Any] | None:
    loop = asyncio._get_running_loop()
    return None if loop is None else asyncio.current_task(loop)


def task_or_thread() -> object:
    """Whose per-caller state this is (as :class:`TaskLocal` keys it): the asyncio task
    running on this thread's event loop, inside the bridge or not, else the thread."""
    task = _current_task()
    return task if task is not None else threading.get_ident()


class TaskLocal(Generic[T]):
    """One ``factory()`` value per caller: per asyncio task on a thread running an
    event loop (tasks share the thread), per thread elsewhere, like :class:`threading.local`.

    A task started by another does not share its value (a transaction belongs
    to the task that opened it). A task's value is dropped when the task is gone.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._thread = threading.local()
        self._tasks: weakref.WeakKeyDictionary[asyncio.Task[Any], T] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> T:
        """The calling task's (or thread's) value, made on first use."""
        task = _current_task()
        if task is not None:
            value = self._tasks.get(task)
            if value is None:
                value = self._tasks[task] = self._factory()
            return value
        try:
            return cast(T, self._thread.value)
        except AttributeError:
            value = self._thread.value = self._factory()
            return value


class PerTask:
    """An object whose attributes are those of one ``factory()`` value per task (see
    :class:`TaskLocal`): stands in for a :class:`threading.local` whose state must
    follow asyncio tasks rather than threads."""

    __slots__ = ("_local",)

    def __init__(self, factory: Callable[[], object]) -> None:
        object.__setattr__(self, "_local", TaskLocal(factory))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._local.get(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._local.get(), name, value)


class RLock:
    """A reentrant lock owned by a task inside the bridge or by a thread outside it.

    Inside the bridge a task that must wait awaits (the event loop runs on);
    a thread waits by blocking. Either may wait for the other: a transaction
    of a synchronous store and one of an asynchronous store exclude each
    other too. Waiters are served in arrival order. Use it as a context
    manager, like :class:`threading.RLock`.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: object = None
        self._count = 0
        self._waiters: deque[_Waiter] = deque()

    def acquire(self) -> bool:
        """Take the lock, waiting as long as it takes; True."""
        me = caller()
        with self._mutex:
            if self._owner is None or self._owner == me:
                self._owner = me
                self._count += 1
                return True
            waiter = _Waiter(me)
            self._waiters.append(waiter)
        try:
            waiter.wait()
        except BaseException:
            with self._mutex:
                if self._owner is waiter.owner and waiter.granted:
                    self._release_locked()  # handed over as we were cancelled: pass it on
                else:
                    self._waiters.remove(waiter)
            raise
        return True

    def release(self) -> None:
        """Give the lock up (once per acquire); the next waiter gets it."""
        with self._mutex:
            if self._owner != caller():
                raise RuntimeError("cannot release a lock held by another task or thread")
            self._count -= 1
            if self._count == 0:
                self._release_locked()

    def _release_locked(self) -> None:
        if self._waiters:
            waiter = self._waiters.popleft()
            self._owner = waiter.owner
            self._count = 1
            waiter.grant()
        else:
            self._owner = None
            self._count = 0

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Waiter:
    """One task or thread waiting for an :class:`RLock`."""

    def __init__(self, owner: object) -> None:
        self.owner = owner
        self.granted = False
        if isinstance(owner, asyncio.Task):
            self._loop: asyncio.AbstractEventLoop | None = owner.get_loop()
            self._future: asyncio.Future[None] | None = self._loop.create_future()
            self._event: threading.Event | None = None
        else:
            self._loop = None
            self._future = None
            self._event = threading.Event()

    def wait(self) -> None:
        if self._future is not None:
            await_(self._future)
        else:
            assert self._event is not None
            self._event.wait()

    def grant(self) -> None:
        self.granted = True
        if self._event is not None:
            self._event.set()
            return
        assert self._loop is not None
        assert self._future is not None
        future = self._future

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            wake()
        else:
            self._loop.call_soon_threadsafe(wake)
