"""The clonestore testing kit: a conformance suite and a pytest plugin.

Three users, one kit:

* **Backend authors** prove a storage backend with the conformance suite that
  clonestore ships, unmodified::

      python -m pytest --pyargs clonestore.testing --clonestore-url=mybackend://...

  The suite (:mod:`clonestore.testing.contract`) covers every public
  operation, every error class and every validation rule, on a fresh store
  per test, plus SPI-level checks that talk to ``store.backend`` directly and
  checks of each optional capability the backend declares. The differential
  properties (:mod:`clonestore.testing.properties`, hypothesis; strategies in
  :mod:`clonestore.testing.strategies`, profiles in
  :mod:`clonestore.testing.profiles`) then require the same results as
  ``memory://`` for random operations and queries.
* **Application test suites** get a ``clonestore_store`` fixture: a fresh
  ``memory://`` store per test (``--clonestore-url`` or an overriding
  ``clonestore_url`` fixture picks another backend; override
  ``clonestore_plugins`` to enable plugins).
* **clonestore's own tests** override ``clonestore_url`` once, in
  ``tests/matrix.py``, to run the same suite on memory, SQLite and
  PostgreSQL.

The pytest plugin (:mod:`clonestore.testing.plugin`, entry point ``pytest11``)
is active wherever clonestore is installed. Its fixtures:

``clonestore_url``
    the URL under test: ``--clonestore-url``, else the ``clonestore_url`` ini
    value, else ``"memory://"``.
``store_factory``
    ``store_factory(**kwargs)`` opens a store on ``clonestore_url``; keyword
    arguments go to :func:`clonestore.open` (``plugins``, ``clock``,
    ``id_factory``...). Every table a test's stores use is emptied when the
    test first sees it, so a test starts from a clean database even on a
    shared server; all stores are closed at teardown.
``store``
    ``store_factory()``: a clean store without plugins.
``clonestore_plugins``
    plugins for ``clonestore_store`` (default: none).
``clonestore_store``
    ``store_factory(plugins=clonestore_plugins)``, for application tests.
``clonestore_async_store``
    the same for async tests: an open :class:`~clonestore.AsyncStore` (needs
    anyio's pytest plugin or pytest-asyncio).

``clonestore_async``
    whether ``store_factory``'s stores go through :func:`clonestore.open_async`
    (:mod:`clonestore.testing.blocking`): ``--clonestore-async`` runs the whole
    kit that way; a suite may parametrise it to run both.

Deterministic helpers for any test: :class:`FrozenClock` (an injectable
clock that moves only when told) and :func:`sequential_ids` (an injectable
id factory giving predictable, increasing UUIDs).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from clonestore._store import Store

__all__ = ["FrozenClock", "Inbox", "StoreFactory", "sequential_ids"]

#: Where a :class:`FrozenClock` starts unless told otherwise.
DEFAULT_START = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


class FrozenClock:
    """A deterministic clock for ``clonestore.open(url, clock=...)``.

    Calling it returns the current (timezone-aware UTC) time, which changes only
    through :meth:`advance`, or by ``step`` seconds after every call when a step
    is given (so each timestamp it hands out is distinct and increasing)::

        clock = FrozenClock(datetime(2024, 5, 1, tzinfo=UTC))
        store = clonestore.open("memory://", clock=clock)
        clock.advance(60)
    """

    def __init__(self, start: datetime = DEFAULT_START, *, step: float = 0.0) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("FrozenClock needs a timezone-aware start")
        if step < 0:
            raise ValueError("step must not be negative")
        self._now = start.astimezone(UTC)
        self._step = timedelta(seconds=step)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            now = self._now
            self._now += self._step
            return now

    @property
    def now(self) -> datetime:
        """The time the next call returns, without moving the clock."""
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds`` (may be fractional); returns the new time."""
        if seconds < 0:
            raise ValueError("a FrozenClock only moves forward")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def __repr__(self) -> str:
        return f"FrozenClock({self._now.isoformat()})"


class StoreFactory(Protocol):
    """The type of the ``store_factory`` fixture: opens stores on the URL under test."""

    #: The URL the stores are opened on.
    url: str

    def __call__(self, **kwargs: Any) -> Store:
        """Open a store; ``kwargs`` go to :func:`clonestore.open`."""
        ...


def sequential_ids(start: int = 1) -> Callable[[], str]:
    """An id factory for ``clonestore.open(url, id_factory=...)`` giving valid UUIDs
    that sort in the order they were made: ``00000000-0000-4000-8000-000000000001``,
    ``...002``, and so on."""
    counter = itertools.count(start)
    lock = threading.Lock()

    def next_id() -> str:
        with lock:
            n = next(counter)
        return f"00000000-0000-4000-8000-{n:012x}"

    return next_id


class Inbox:
    """A ``listen(channel, callback)`` callback that collects what it is given,
    for tests of the ``listen_notify`` capability."""

    def __init__(self) -> None:
        self.messages: list[str | None] = []
        self.arrived = threading.Condition()

    def __call__(self, payload: str | None) -> None:
        with self.arrived:
            self.messages.append(payload)
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10) -> list[str | None]:
        """The messages so far, once there are ``count`` (or ``timeout`` seconds passed)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout=timeout)
            return list(self.messages)
