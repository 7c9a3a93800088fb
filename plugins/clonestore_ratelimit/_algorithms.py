"""The three counting algorithms, each over atomic steps of a counter store.

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
  (TAT); each admission moves it by one emission interval in one atomic step
  of the counter store (on tables, an ``update`` whose ``where`` is the
  admission condition, so a lost race matches no row and is tried again).

The state lives in a :class:`~clonestore_ratelimit._storage.CounterStore`:
the store's own tables, or a shared store such as Redis (one Lua script per
step there).
"""

from __future__ import annotations

from collections.abc import Callable

from clonestore_ratelimit._policies import Decision
from clonestore_ratelimit._storage import MAX_ATTEMPTS, CounterStore, WindowCount
from clonestore_ratelimit._time import Bounded, from_us, to_us

__all__ = ["MAX_ATTEMPTS", "Counters", "from_us", "to_us"]


class Counters:
    """The algorithms, over one :class:`~clonestore_ratelimit._storage.CounterStore`."""

    def __init__(self, storage: CounterStore, clock: Callable[[], int] | None = None) -> None:
        self.storage = storage
        #: The clock (microseconds) read again once a bucket's step is done; see
        #: :meth:`token_bucket`.
        self.clock = clock
        # Admitted calls of windows that have ended, by (user, endpoint, window, start).
        self._previous: Bounded[tuple[str, str, int, int], int] = Bounded()

    def forget_user(self, user_id: str) -> None:
        self._previous.forget(lambda key: key[0] == user_id)

    # ------------------------------------------------------------------ windows

    def fixed_window(
        self, user_id: str, endpoint: str, limit: int, window: int, now_us: int
    ) -> Decision:
        w_us = window * 1_000_000
        start_us = now_us - now_us % w_us
        count = self.storage.hit(user_id, endpoint, window, start_us, limit, now_us)["count"]
        return _window_decision(count <= limit, limit - count, limit, start_us + w_us, now_us)

    def fixed_status(
        self, user_id: str, endpoint: str, limit: int, window: int, now_us: int
    ) -> Decision:
        w_us = window * 1_000_000
        start_us = now_us - now_us % w_us
        found = self.storage.read(user_id, endpoint, window, start_us)
        count = found["count"] if found else 0
        return _window_decision(count < limit, limit - count, limit, start_us + w_us, now_us)

    def window_quota(self, user_id: str, endpoint: str, window: int, now_us: int) -> int | None:
        """The limit the last check in the current fixed window used (None: no check yet)."""
        w_us = window * 1_000_000
        found = self.storage.read(user_id, endpoint, window, now_us - now_us % w_us)
        return None if found is None else int(found["quota"])

    def _admitted_before(self, user_id: str, endpoint: str, window: int, start_us: int) -> int:
        """Calls admitted in the window that ended at ``start_us`` (cached once read)."""
        key = (user_id, endpoint, window, start_us - window * 1_000_000)
        cached = self._previous.get(key)
        if cached is None:
            found = self.storage.read(user_id, endpoint, window, key[3])
            cached = 0 if found is None else _admitted(found)
            self._previous.put(key, cached)
        return cached

    def sliding_window(
        self, user_id: str, endpoint: str, limit: int, window: int, now_us: int
    ) -> Decision:
        w_us = window * 1_000_000
        start_us = now_us - now_us % w_us
        previous = min(self._admitted_before(user_id, endpoint, window, start_us), limit)
        counted = self.storage.hit(user_id, endpoint, window, start_us, limit, now_us)
        count = counted["count"]
        # The estimate is previous * (share of the previous window still inside
        # the sliding window) + count; compared in integers, multiplied by w_us.
        carried = previous * (w_us - (now_us - start_us))
        allowed = carried + count * w_us <= limit * w_us
        if not allowed and count <= limit:
            # Refused although under the fixed count: remember it for usage().
            self.storage.refuse(user_id, window, counted)
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
        found = self.storage.read(user_id, endpoint, window, start_us)
        count = found["count"] if found else 0
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
        allowed, tat = self.storage.take(user_id, endpoint, now_us, interval, latest)
        # The decision is told at the time the step is done, not when the clock was read
        # before it: a caller whose reading is older than that of another caller's step
        # that went first (another process started the bucket meanwhile) would count a
        # token less, and hand out a remaining count twice.
        if self.clock is not None:
            now_us = max(now_us, self.clock())
        return _bucket_decision(allowed, tat, limit, interval, now_us)

    def bucket_status(
        self, user_id: str, endpoint: str, limit: int, window: int, now_us: int
    ) -> Decision:
        interval = max(1, window * 1_000_000 // limit)
        stored = self.storage.bucket(user_id, endpoint)
        tat = now_us if stored is None else max(stored, now_us)
        depth = now_us + interval * limit
        allowed = tat + interval <= depth
        return Decision(
            allowed=allowed,
            remaining=(depth - tat) // interval,
            reset_at=from_us(tat),
            retry_after=0.0 if allowed else (tat - depth + interval) / 1_000_000,
            limit=limit,
        )


def _bucket_decision(allowed: bool, tat: int, limit: int, interval: int, now_us: int) -> Decision:
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


def _admitted(window: WindowCount) -> int:
    """Calls a window admitted: the count up to its quota, less sliding refusals."""
    admitted: int = max(0, min(window["count"], window["quota"]) - window["refused"])
    return admitted


def _window_decision(
    allowed: bool,
    remaining: int,
    limit: int,
    end_us: int,
    now_us: int,
) -> Decision:
    return Decision(
        allowed=allowed,
        remaining=max(0, remaining),
        reset_at=from_us(end_us),
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
