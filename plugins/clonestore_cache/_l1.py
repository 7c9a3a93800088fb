"""The in-process level: an LRU map with per-entry expiry, and stampede control."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Final, TypeVar

__all__ = ["L1", "MISSING", "Flights", "Missing"]

T = TypeVar("T")
#: How long a caller waits for another thread computing the same key before
#: computing it itself.
FLIGHT_WAIT: Final = 30.0


class Missing:
    """The type of :data:`MISSING`."""

    def __repr__(self) -> str:
        return "MISSING"


#: What :meth:`L1.get` returns for an absent or expired key.
MISSING: Final = Missing()


class _Entry:
    __slots__ = ("expires", "user", "value")

    def __init__(self, value: Any, expires: float, user: str | None) -> None:
        self.value = value
        self.expires = expires
        self.user = user


class L1:
    """A thread-safe LRU map of ``(namespace, key)`` to values that expire.

    Expiry times are POSIX timestamps from the store's clock, so tests that
    move the clock move expiry too. ``user`` tags an entry with the user it is
    about, for ``erase_user``.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, Hashable], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        namespace: str,
        key: Hashable,
        now: float,
        change: Callable[[Any], Any] | None = None,
    ) -> Any:
        """The live value, or :data:`MISSING`; with ``change``, what ``change(value)``
        returns, run under the lock (to update a cached value in place)."""
        with self._lock:
            entry = self._data.get((namespace, key))
            if entry is None:
                return MISSING
            if entry.expires <= now:
                del self._data[(namespace, key)]
                return MISSING
            self._data.move_to_end((namespace, key))
            return entry.value if change is None else change(entry.value)

    def put(
        self, namespace: str, key: Hashable, value: Any, expires: float, user: str | None = None
    ) -> None:
        with self._lock:
            self._data[(namespace, key)] = _Entry(value, expires, user)
            self._data.move_to_end((namespace, key))
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def drop(self, namespace: str, key: Hashable) -> None:
        with self._lock:
            self._data.pop((namespace, key), None)

    def drop_where(self, match: Callable[[str, Hashable, str | None], bool]) -> int:
        """Remove every entry for which ``match(namespace, key, user)`` holds."""
        with self._lock:
            doomed = [k for k, e in self._data.items() if match(k[0], k[1], e.user)]
            for k in doomed:
                del self._data[k]
            return len(doomed)

    def drop_namespace(self, namespace: str) -> int:
        return self.drop_where(lambda ns, _key, _user: ns == namespace)

    def drop_expired(self, now: float) -> int:
        with self._lock:
            doomed = [k for k, e in self._data.items() if e.expires <= now]
            for k in doomed:
                del self._data[k]
            return len(doomed)

    def count(self, match: Callable[[str], bool]) -> int:
        with self._lock:
            return sum(1 for ns, _key in self._data if match(ns))

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class _Flight:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class Flights:
    """Stampede control: concurrent misses for one key compute it once.

    The first caller computes; the others wait for its result (or its error).
    A caller that waited longer than :data:`FLIGHT_WAIT` computes by itself.
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight] = {}
        self._lock = threading.Lock()

    def run(self, key: Hashable, compute: Callable[[], T]) -> tuple[T, bool]:
        """``(value, computed_here)``."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            if not flight.done.wait(FLIGHT_WAIT):
                return compute(), True
            if flight.error is not None:
                raise flight.error
            shared: T = flight.value
            return shared, False
        try:
            flight.value = compute()
            return flight.value, True
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()
