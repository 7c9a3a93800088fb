"""The three counting algorithms, each over atomic SPI statements.

Every admission is decided by one atomic statement whose result alone says
whether the call is in: so the decision is exact under any concurrency, on
every backend, without locks held between statements.

* Fixed window: one ``upsert`` that always adds one and returns the count;
  the call is admitted iff the returned count is at most the limit. With N
  concurrent calls the counts returned are 1..N, so exactly ``limit`` are in.
* Sliding-window counter: the same upsert on the current window, weighed
  with the previous window's admitted calls (read once per window and
  process, then cached: a window that has ended no longer changes).
* Token bucket: GCRA. The bucket's state is its theoretical arrival time
  (TAT); each admission moves it by one emission interval with an ``update``
  whose ``where`` is the admission condition, so a lost race matches no row
  and is simply tried again against the new state.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final, Generic, TypeVar

from clonestore import Conflict
from clonestore.spi import And, Backend, Cond, Increment, Row
from clonestore_ratelimit._policies import Decision
from clonestore_ratelimit._tables import BUCKET_KEY, BUCKETS, WINDOW_KEY, WINDOWS

__all__ = ["Counters", "from_us", "to_us"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
ONE: Final = Increment(1)
ZERO: Final = Increment(0)
#: How often a token-bucket check retries after losing a race to another writer.
MAX_ATTEMPTS: Final = 32
_CACHE_SIZE: Final = 10_000

K = TypeVar("K")
V = TypeVar("V")


def new_id() -> str:
    """A random row id in UUID form (cheaper than ``uuid.uuid4``: a check makes one
    each time, and it is used only when the counter's row is new)."""
    digits = f"{random.getrandbits(128):032x}"
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-a{digits[17:20]}-{digits[20:]}"


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch."""
    return (moment - EPOCH) // _US


def from_us(us: int) -> datetime:
    """The UTC datetime ``us`` microseconds after the epoch."""
    return EPOCH + timedelta(microseconds=us)


class _Bounded(Generic[K, V]):
    """A small thread-safe map that forgets its oldest entries."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        return self._data.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def forget(self, match: Callable[[K], bool]) -> None:
        with self._lock:
            for key in [k for k in self._data if match(k)]:
                del self._data[key]


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


class Counters:
    """The algorithms, over one backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        # Admitted calls of windows that have ended, by (user, endpoint, window, start).
        self._previous: _Bounded[tuple[str, str, int, int], int] = _Bounded()
        # Last TAT seen per bucket: picks the statement most likely to decide.
        self._tat_hint: _Bounded[tuple[str, str], int] = _Bounded()
        self._windows: dict[tuple[int, int], tuple[datetime, datetime]] = {}

    def forget_user(self, user_id: str) -> None:
        self._previous.forget(lambda key: key[0] == user_id)
        self._tat_hint.forget(lambda key: key[0] == user_id)

    # ------------------------------------------------------------------ windows

    def _bounds(self, start_us: int, w_us: int) -> tuple[datetime, datetime]:
        """The window's start and end as datetimes (the last few are remembered)."""
        key = (start_us, w_us)
        bounds = self._windows.get(key)
        if bounds is None:
            bounds = (from_us(start_us), from_us(start_us + w_us))
            if len(self._windows) > 64:
                self._windows.clear()
            self._windows[key] = bounds
        return bounds

    def _count(self, user_id: str, endpoint: str, limit: int, window: int, start_us: int) -> Row:
        """Add one call to the window's counter: one upsert, one round trip."""
        start, end = self._bounds(start_us, window * 1_000_000)
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
        return self.backend.upsert(WINDOWS, WINDOW_KEY, row, {"count": ONE, "quota": limit})

    def _read_count(self, user_id: str, endpoint: str, window: int, start_us: int) -> Row | None:
        rows = self.backend.select(
            WINDOWS, _window_where(user_id, endpoint, window, start_us), limit=1
        )
        return rows[0] if rows else None

    def fixed_window(
        self, user_id: str, endpoint: str, limit: int, window: int, now_us: int
    ) -> Decision:
        w_us = window * 1_000_000
        start_us = now_us - now_us % w_us
        count = self._count(user_id, endpoint, limit, window, start_us)["count"]
        end = self._bounds(start_us, w_us)[1]
        return _window_decision(count <= limit, limit - count, limit, start_us + w_us, now_us, end)

    def fixed_status(
        self, user_id: str, endpoint: str, limit: int, window: int, now_us: int
    ) -> Decision:
        w_us = window * 1_000_000
        start_us = now_us - now_us % w_us
        row = self._read_count(user_id, endpoint, window, start_us)
        count = row["count"] if row else 0
        return _window_decision(count < limit, limit - count, limit, start_us + w_us, now_us)

    def _admitted_before(self, user_id: str, endpoint: str, window: int, start_us: int) -> int:
        """Calls admitted in the window that ended at ``start_us`` (cached once read)."""
        key = (user_id, endpoint, window, start_us - window * 1_000_000)
        cached = self._previous.get(key)
        if cached is None:
            row = self._read_count(user_id, endpoint, window, key[3])
            cached = 0 if row is None else _admitted(row)
            self._previous.put(key, cached)
        return cached

    def sliding_window(
        self, user_id: str, endpoint: str, limit: int, window: int, now_us: int
    ) -> Decision:
        w_us = window * 1_000_000
        start_us = now_us - now_us % w_us
        previous = min(self._admitted_before(user_id, endpoint, window, start_us), limit)
        row = self._count(user_id, endpoint, limit, window, start_us)
        count = row["count"]
        # The estimate is previous * (share of the previous window still inside
        # the sliding window) + count; compared in integers, multiplied by w_us.
        carried = previous * (w_us - (now_us - start_us))
        allowed = carried + count * w_us <= limit * w_us
        if not allowed and count <= limit:
            # Refused although under the fixed count: remember it for usage().
            self.backend.update(WINDOWS, Cond("id", "eq", row["id"]), {"refused": ONE})
        remaining = (limit * w_us - carried) // w_us - count
        retry = 0.0 if allowed else _sliding_retry(previous, count, limit, w_us, now_us - start_us)
        return Decision(
            allowed=allowed,
            remaining=max(0, remaining),
            reset_at=from_us(start_us + w_us),
            retry_after=retry,
            limit=limit,
        )

    def sliding_status(
        self, user_id: str, endpoint: str, limit: int, window: int, now_us: int
    ) -> Decision:
        w_us = window * 1_000_000
        start_us = now_us - now_us % w_us
        previous = min(self._admitted_before(user_id, endpoint, window, start_us), limit)
        row = self._read_count(user_id, endpoint, window, start_us)
        count = row["count"] if row else 0
        carried = previous * (w_us - (now_us - start_us))
        allowed = carried + (count + 1) * w_us <= limit * w_us
        remaining = (limit * w_us - carried) // w_us - count
        retry = 0.0 if allowed else _sliding_retry(previous, count, limit, w_us, now_us - start_us)
        return Decision(
            allowed=allowed,
            remaining=max(0, remaining),
            reset_at=from_us(start_us + w_us),
            retry_after=retry,
            limit=limit,
        )

    # ------------------------------------------------------------------ token bucket

    def token_bucket(
        self, user_id: str, endpoint: str, limit: int, window: int, now_us: int
    ) -> Decision:
        interval = max(1, window * 1_000_000 // limit)  # one token's worth of time
        latest = now_us + interval * (limit - 1)  # the largest TAT that still admits
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
                    return self._bucket_decision(key, True, row, limit, interval, now_us)
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
                return self._bucket_decision(key, allowed, rows[0], limit, interval, now_us)
            hint = None  # another writer moved the bucket (or removed it): look again
        raise Conflict(f"token bucket {endpoint!r} of {user_id!r} kept changing; try again")

    def _bucket_decision(
        self,
        key: tuple[str, str],
        allowed: bool,
        row: Row,
        limit: int,
        interval: int,
        now_us: int,
    ) -> Decision:
        tat = row["tat_us"]
        self._tat_hint.put(key, tat)
        depth = now_us + interval * limit  # the TAT of an empty bucket
        remaining = max(0, (depth - max(tat, now_us)) // interval)
        retry = 0.0 if allowed else (tat - depth + interval) / 1_000_000
        return Decision(
            allowed=allowed,
            remaining=remaining,
            reset_at=from_us(max(tat, now_us)),
            retry_after=retry,
            limit=limit,
        )

    def bucket_status(
        self, user_id: str, endpoint: str, limit: int, window: int, now_us: int
    ) -> Decision:
        interval = max(1, window * 1_000_000 // limit)
        rows = self.backend.select(BUCKETS, _bucket_where(user_id, endpoint), limit=1)
        tat = max(rows[0]["tat_us"], now_us) if rows else now_us
        depth = now_us + interval * limit
        allowed = tat + interval <= depth
        return Decision(
            allowed=allowed,
            remaining=(depth - tat) // interval,
            reset_at=from_us(tat),
            retry_after=0.0 if allowed else (tat - depth + interval) / 1_000_000,
            limit=limit,
        )


def _admitted(row: Row) -> int:
    """Calls a window admitted: the count up to its quota, less sliding refusals."""
    admitted: int = max(0, min(row["count"], row["quota"]) - row["refused"])
    return admitted


def _window_decision(
    allowed: bool,
    remaining: int,
    limit: int,
    end_us: int,
    now_us: int,
    end: datetime | None = None,
) -> Decision:
    return Decision(
        allowed=allowed,
        remaining=max(0, remaining),
        reset_at=from_us(end_us) if end is None else end,
        retry_after=0.0 if allowed else (end_us - now_us) / 1_000_000,
        limit=limit,
    )


def _sliding_retry(previous: int, count: int, limit: int, w_us: int, elapsed: int) -> float:
    """Seconds until the next call fits under the sliding estimate."""
    if count + 1 <= limit and previous > 0:
        # previous * (w - t) + (count + 1) * w <= limit * w  <=>  t >= w - (limit-count-1)*w/prev
        needed = w_us - (limit - count - 1) * w_us // previous
        return max(0, needed - elapsed) / 1_000_000
    # Not before the window ends; then the full previous window weighs 1/limit less per share.
    return (w_us - elapsed + (w_us // max(limit, 1))) / 1_000_000
