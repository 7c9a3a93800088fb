"""Where the rate limiter's counters live: the :class:`CounterStore` protocol.

The algorithms (:mod:`clonestore_ratelimit._algorithms`) decide; a counter
store keeps their state with atomic operations, so that every decision rests
on one atomic step and stays exact across threads and processes. Two stores:

* :class:`TableCounters` (the default): the store's own backend, in the
  tables of :mod:`clonestore_ratelimit._tables`.
* any store offered for ``RateLimitPlugin(storage=url)`` through the
  ``clonestore_shared_stores(kind="ratelimit.counters")`` hook, found by the
  URL's scheme (``redis://``, ``rediss://`` and ``redis+cluster://`` by the
  ``clonestore_redis`` plugin).

The protocol knows no engine: plain values and mappings in and out (so a
store's plugin needs nothing from this one), times in microseconds since the
epoch (from the store's clock, never the server's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol, TypeAlias, runtime_checkable

from clonestore.query import And, Cond
from clonestore.spi import Backend, Increment, Row, capabilities_of
from clonestore_ratelimit._tables import BUCKET_KEY, BUCKETS, WINDOW_KEY, WINDOWS
from clonestore_ratelimit._time import Bounded, from_us, new_id, to_us

__all__ = ["KIND", "MAX_ATTEMPTS", "BucketState", "CounterStore", "TableCounters", "WindowCount"]

#: The ``kind`` asked of ``clonestore_shared_stores``.
KIND: Final = "ratelimit.counters"
#: How often a token-bucket step retries after losing a race to another writer.
MAX_ATTEMPTS: Final = 32
ONE: Final = Increment(1)
ZERO: Final = Increment(0)


#: A window's counter, as a counter store returns it: ``endpoint``,
#: ``window_start`` (microseconds), ``count`` (calls, admitted or not), ``quota``
#: (the limit of the last check), ``refused`` (calls a sliding window refused
#: although ``count <= quota``) and ``ref`` (the store's handle on it, or None).
WindowCount: TypeAlias = Mapping[str, Any]
#: A token bucket: ``endpoint``, ``tat_us`` (its theoretical arrival time),
#: ``admitted`` and ``refused`` calls.
BucketState: TypeAlias = Mapping[str, Any]


@runtime_checkable
class CounterStore(Protocol):
    """What the rate limiter needs of the storage of its counters.

    Each method that counts is one atomic step. Failing to reach the storage
    raises :class:`clonestore.StorageUnavailable` (the limiter then applies its
    ``on_unavailable`` policy).
    """

    def hit(
        self, user_id: str, endpoint: str, window: int, start_us: int, limit: int, now_us: int
    ) -> WindowCount:
        """Add one call to the window (``window`` seconds from ``start_us``) and
        return its counter after the call, with ``quota`` set to ``limit``."""

    def read(self, user_id: str, endpoint: str, window: int, start_us: int) -> WindowCount | None:
        """The window's counter, or None when it has none."""

    def refuse(self, user_id: str, window_seconds: int, window: WindowCount) -> None:
        """Count one call of ``window`` (as returned by ``hit``) as refused."""

    def take(
        self, user_id: str, endpoint: str, now_us: int, interval: int, latest: int
    ) -> tuple[bool, int]:
        """One GCRA step on the bucket, atomically: a missing or full bucket (TAT
        before ``now_us``) admits and moves its TAT to ``now_us + interval``; a TAT
        up to ``latest`` admits and moves it by ``interval``; else the call is
        refused. Returns ``(admitted, TAT after the step)``."""

    def bucket(self, user_id: str, endpoint: str) -> int | None:
        """The bucket's TAT, or None when it has none."""

    def usage(self, user_id: str) -> tuple[Sequence[WindowCount], Sequence[BucketState]]:
        """The user's stored windows and buckets."""

    def cleanup(self, cutoff_us: int) -> int:
        """Remove windows that ended, and buckets full, before ``cutoff_us``; how many."""

    def erase_user(self, user_id: str) -> None:
        """Remove the user's windows and buckets."""

    def close(self) -> None:
        """Release connections."""


def _window_where(user_id: str, endpoint: str, window: int, start_us: int) -> And:
    return And(
        (
            Cond("user_id", "eq", user_id),
            Cond("endpoint", "eq", endpoint),
            Cond("window_seconds", "eq", window),
            Cond("window_start", "eq", from_us(start_us)),
        )
    )


def _bucket_where(user_id: str, endpoint: str, *conds: Cond) -> And:
    return And((Cond("user_id", "eq", user_id), Cond("endpoint", "eq", endpoint), *conds))


#: What a window's decision reads of its row (capability ``upsert_returning``).
_DECIDES: Final = ("id", "count", "quota", "refused")


def _window(row: Row, start_us: int, endpoint: str | None = None) -> dict[str, Any]:
    return {
        "endpoint": row["endpoint"] if endpoint is None else endpoint,
        "window_start": start_us,
        "count": row["count"],
        "quota": row["quota"],
        "refused": row["refused"],
        "ref": row["id"],
    }


class TableCounters:
    """Counters in the store's backend: a window is one row moved by one upsert,
    a bucket one row moved by conditional updates (a lost race matches no row
    and is tried again against the new state)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        # The window's upsert returns only what the decision reads, where it can.
        self._returning = (
            {"returning": _DECIDES} if "upsert_returning" in capabilities_of(backend) else {}
        )
        self._bounds: dict[tuple[int, int], tuple[Any, Any]] = {}
        # Last TAT seen per bucket: picks the statement most likely to decide.
        self._tat_hint: Bounded[tuple[str, str], int] = Bounded()

    def _window_bounds(self, start_us: int, window: int) -> tuple[Any, Any]:
        key = (start_us, window)
        bounds = self._bounds.get(key)
        if bounds is None:
            bounds = (from_us(start_us), from_us(start_us + window * 1_000_000))
            if len(self._bounds) > 64:
                self._bounds.clear()
            self._bounds[key] = bounds
        return bounds

    def hit(
        self, user_id: str, endpoint: str, window: int, start_us: int, limit: int, now_us: int
    ) -> dict[str, Any]:
        start, end = self._window_bounds(start_us, window)
        row = {
            "id": new_id(),
            "user_id": user_id,
            "endpoint": endpoint,
            "window_seconds": window,
            "window_start": start,
            "window_end": end,
            "count": 1,
            "quota": limit,
            "refused": 0,
        }
        stored = self.backend.upsert(
            WINDOWS, WINDOW_KEY, row, {"count": ONE, "quota": limit}, **self._returning
        )
        return _window(stored, start_us, endpoint)

    def read(
        self, user_id: str, endpoint: str, window: int, start_us: int
    ) -> dict[str, Any] | None:
        rows = self.backend.select(
            WINDOWS, _window_where(user_id, endpoint, window, start_us), limit=1
        )
        return _window(rows[0], start_us) if rows else None

    def refuse(self, user_id: str, window_seconds: int, window: WindowCount) -> None:
        self.backend.update(WINDOWS, Cond("id", "eq", window["ref"]), {"refused": ONE})

    def take(
        self, user_id: str, endpoint: str, now_us: int, interval: int, latest: int
    ) -> tuple[bool, int]:
        from clonestore import Conflict

        key = (user_id, endpoint)
        hint = self._tat_hint.get(key)
        for _ in range(MAX_ATTEMPTS):
            if hint is None:
                bucket_id = new_id()
                row = self.backend.upsert(
                    BUCKETS,
                    BUCKET_KEY,
                    {
                        "id": bucket_id,
                        "user_id": user_id,
                        "endpoint": endpoint,
                        "tat_us": now_us + interval,
                        "admitted": 1,
                        "refused": 0,
                    },
                    {"refused": ZERO},  # an existing bucket is only read
                )
                if row["id"] == bucket_id:
                    self._tat_hint.put(key, row["tat_us"])
                    return True, row["tat_us"]
                hint = row["tat_us"]
                continue
            if hint < now_us:  # full: start again from now
                rows = self.backend.update(
                    BUCKETS,
                    _bucket_where(user_id, endpoint, Cond("tat_us", "lt", now_us)),
                    {"tat_us": now_us + interval, "admitted": ONE},
                )
                allowed = True
            elif hint <= latest:  # a token is left: take it
                rows = self.backend.update(
                    BUCKETS,
                    _bucket_where(
                        user_id,
                        endpoint,
                        Cond("tat_us", "gte", now_us),
                        Cond("tat_us", "lte", latest),
                    ),
                    {"tat_us": Increment(interval), "admitted": ONE},
                )
                allowed = True
            else:  # empty: refuse, and learn when a token comes back
                rows = self.backend.update(
                    BUCKETS,
                    _bucket_where(user_id, endpoint, Cond("tat_us", "gt", latest)),
                    {"refused": ONE},
                )
                allowed = False
            if rows:
                tat: int = rows[0]["tat_us"]
                self._tat_hint.put(key, tat)
                return allowed, tat
            hint = None  # another writer moved the bucket (or removed it): look again
        raise Conflict(f"token bucket {endpoint!r} of {user_id!r} kept changing; try again")

    def bucket(self, user_id: str, endpoint: str) -> int | None:
        rows = self.backend.select(BUCKETS, _bucket_where(user_id, endpoint), limit=1)
        return rows[0]["tat_us"] if rows else None

    def usage(self, user_id: str) -> tuple[list[WindowCount], list[BucketState]]:
        where = Cond("user_id", "eq", user_id)
        rows = self.backend.select(WINDOWS, where)
        windows: list[WindowCount] = [_window(r, to_us(r["window_start"])) for r in rows]
        columns = ("endpoint", "tat_us", "admitted", "refused")
        buckets: list[BucketState] = [
            {c: r[c] for c in columns} for r in self.backend.select(BUCKETS, where)
        ]
        return windows, buckets

    def cleanup(self, cutoff_us: int) -> int:
        backend = self.backend
        with backend.transaction():
            removed = backend.delete(WINDOWS, Cond("window_end", "lt", from_us(cutoff_us)))
            removed += backend.delete(BUCKETS, Cond("tat_us", "lt", cutoff_us))
        return removed

    def erase_user(self, user_id: str) -> None:
        self.backend.delete(WINDOWS, Cond("user_id", "eq", user_id))
        self.backend.delete(BUCKETS, Cond("user_id", "eq", user_id))
        self._tat_hint.forget(lambda key: key[0] == user_id)

    def close(self) -> None:
        """Nothing to release: the store closes its backend."""
