"""The two levels under ``store.cache``: L1 in process, L2 in the backend's tables
(or in a shared store such as Redis, see :mod:`clonestore_cache._l2`).

:class:`TwoLevelCache` holds the machinery (lookups through both levels,
invalidation here and in other processes, statistics, maintenance); the
seed caches' methods are in :mod:`clonestore_cache._service`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast

import attrs

from clonestore import ClonestoreError, Operation, StorageUnavailable, Store
from clonestore.spi import ListenNotify, Row, capabilities_of
from clonestore_cache._channel import CHANNEL, Invalidation, bus, log
from clonestore_cache._entities import EntityReads
from clonestore_cache._l1 import L1, MISSING, Flights
from clonestore_cache._l2 import L2Store, TableL2
from clonestore_cache._tables import TABLES
from clonestore_cache._values import check_ttl

__all__ = [
    "DEFAULT_TTLS",
    "NOTIFIED_L1_TTL",
    "UNNOTIFIED_L1_TTL",
    "CacheConfig",
    "CacheStats",
    "TwoLevelCache",
]

T = TypeVar("T")
#: Time to live of each seed cache's entries, in seconds.
DEFAULT_TTLS: Final[Mapping[str, float]] = {
    "embedding": 3600.0,
    "vector_search": 1800.0,
    "llm_response": 3600.0,
}
#: In-process time to live when none is configured, where invalidations arrive
#: (the backend's ``listen_notify``, or a shared L2's channel): a safety net...
NOTIFIED_L1_TTL: Final = 60.0
#: ...and where none do: how stale a read may be after another process's write.
UNNOTIFIED_L1_TTL: Final = 2.0
#: Hit counts kept in process are written once this many entries have some, or after
#: this many seconds.
FLUSH_HITS: Final = 100
FLUSH_SECONDS: Final = 5.0
#: Seconds a new store waits for its invalidation listener to connect.
LISTEN_WAIT: Final = 2.0
_ID_NAMESPACE: Final = uuid.UUID("0b6c5d0e-6f4e-4f47-9a43-6c9d8d1b2a10")
#: Seconds between two warnings about an unreachable shared L2.
WARN_EVERY: Final = 10.0


@attrs.frozen(kw_only=True)
class CacheConfig:
    """Settings of a cache (see ``CachePlugin``)."""

    l1_size: int = 10_000
    l1_ttl: float | None = None
    ttls: Mapping[str, float] = DEFAULT_TTLS
    listen: bool = True


@attrs.frozen(kw_only=True)
class CacheStats:
    """One cache's counters since the store opened (``entries``: live entries now)."""

    hits: int
    misses: int
    hit_rate: float
    entries: int
    l1_hits: int
    l2_hits: int
    l1_entries: int


class TwoLevelCache:
    """Lookups through L1 and L2, invalidation and statistics (see ``Cache``)."""

    def __init__(
        self,
        store: Store,
        config: CacheConfig,
        *,
        read_through: bool,
        l2: L2Store | None = None,
    ) -> None:
        self._store = store
        self._backend = store.backend
        #: Where L2 lives; a shared store (not the backend's tables) may be
        #: unreachable while the database is not: the cache then degrades.
        self.l2: L2Store = l2 if l2 is not None else TableL2(store.backend)
        self._shared_l2 = l2 is not None
        self._warned = 0.0
        self.config = config
        self.origin = uuid.uuid4().hex
        self.l1 = L1(config.l1_size)
        self.flights = Flights()
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}  # name -> [l1 hits, l2 hits, misses]
        self._epochs: dict[str, int] = {}
        self._epoch = 0
        self._pending_hits: dict[str, int] = {}
        self._last_flush = time.monotonic()
        self._bus_url = store.url
        self._notifier: ListenNotify | None = None
        self._stop_listening: Callable[[], None] | None = None
        self._l2_channel: Any = None
        if config.listen:
            backend = store.backend
            if self._shared_l2 and isinstance(self.l2, ListenNotify):
                # The shared L2 carries invalidations (Redis pub/sub).
                self._notifier = self.l2
                self._l2_channel = self.l2
            elif "listen_notify" in capabilities_of(backend):
                self._notifier = cast(ListenNotify, backend)
        if config.l1_ttl is not None:
            self.l1_ttl = float(config.l1_ttl)
        elif self._notifier is not None:
            self.l1_ttl = NOTIFIED_L1_TTL
        else:
            self.l1_ttl = UNNOTIFIED_L1_TTL
        self.entities = EntityReads(self) if read_through else None
        bus.join(self._bus_url, self)
        if self._notifier is not None:
            try:
                self._stop_listening = self._notifier.listen(CHANNEL, self._on_notify)
            except StorageUnavailable as exc:
                if self._l2_channel is None:
                    raise
                self._degraded(exc)  # the subscriber keeps trying by itself
            channel = self._l2_channel
            if channel is not None:
                # Rows are cached only while invalidations can arrive: give the
                # listener a moment, so a new store caches from its first read.
                getattr(channel, "settled", channel.connected).wait(LISTEN_WAIT)

    # ------------------------------------------------------------------ plumbing

    @property
    def store(self) -> Store:
        return self._store

    def now(self) -> datetime:
        return self._store.clock().astimezone(UTC)

    @property
    def use_l1(self) -> bool:
        """Whether L1 may serve and keep values now: never inside a transaction,
        whose writes may still roll back."""
        return not self._store.in_transaction

    @property
    def notified(self) -> bool:
        """Whether cross-process invalidations are arriving (always, when there is
        no other process to hear from)."""
        channel = self._l2_channel
        if channel is not None:
            return bool(channel.connected.is_set())
        return True

    def _degraded(self, exc: StorageUnavailable) -> None:
        """A shared L2 is unreachable: the call goes on without it (logged now and then)."""
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning("cache L2 unreachable; reading through to the database: %s", exc)

    def count(self, name: str, which: int) -> None:
        with self._lock:
            counts = self._counts.get(name)
            if counts is None:
                counts = self._counts[name] = [0, 0, 0]
            counts[which] += 1

    def epoch(self, namespace: str) -> tuple[int, int]:
        """Changes whenever entries of ``namespace`` may have been invalidated:
        a value read before a change is not kept after it."""
        return self._epoch, self._epochs.get(namespace, 0)

    def _bump(self, namespace: str | None) -> None:
        with self._lock:
            if namespace is None:
                self._epoch += 1
            else:
                self._epochs[namespace] = self._epochs.get(namespace, 0) + 1

    def receive(self, invalidation: Invalidation) -> None:
        """Apply an invalidation to this process's L1."""
        if invalidation.everything or invalidation.users:
            self._bump(None)
        for namespace in {ns for ns, _ in invalidation.keys} | set(invalidation.namespaces):
            self._bump(namespace)
        if invalidation.everything:
            self.l1.clear()
            return
        for namespace, key in invalidation.keys:
            self.l1.drop(namespace, key)
            if namespace == "llm_response":  # a new response: hits of the old one are moot
                with self._lock:
                    self._pending_hits.pop(self._row_id(namespace, key), None)
        for namespace in invalidation.namespaces:
            self.l1.drop_namespace(namespace)
        users = set(invalidation.users)
        if users:
            self.l1.drop_where(lambda _ns, _key, user: user in users)

    def publish(self, invalidation: Invalidation) -> None:
        """Apply ``invalidation`` here and tell the other caches of this database."""
        self.receive(invalidation)
        bus.publish(self._bus_url, self, invalidation)
        if self._notifier is not None:
            try:
                self._notifier.notify(CHANNEL, invalidation.encode(self.origin))
            except ClonestoreError as exc:
                log.warning("cache invalidation not sent to other processes: %s", exc)

    def _on_notify(self, payload: str | None) -> None:
        if payload is None:  # messages may have been lost
            self.receive(Invalidation(everything=True))
            return
        origin, invalidation = Invalidation.decode(payload)
        if origin != self.origin:
            self.receive(invalidation)

    def committed(self, ops: Sequence[Operation]) -> None:
        """Invalidate the rows written by a committed transaction."""
        if self.entities is not None:
            invalidation = self.entities.invalidation(ops)
            if invalidation:
                self.publish(invalidation)

    # ------------------------------------------------------------------ two-level lookups

    def _row_id(self, name: str, key: str) -> str:
        return str(uuid.uuid5(_ID_NAMESPACE, f"{name}\x1f{key}"))

    def _lookup(
        self,
        name: str,
        key: str,
        on_l1_hit: Callable[[Row], Any] | None = None,
        *,
        on_l2_hit: Callable[[Row], None] | None = None,
        counted: bool = True,
    ) -> Row | None:
        now = self.now()
        stamp = now.timestamp()
        use_l1 = self.use_l1
        if use_l1:
            row = self.l1.get(name, key, stamp, on_l1_hit)
            if row is not MISSING:
                if counted:
                    self.count(name, 0)
                return dict(row)
        epoch = self.epoch(name)
        try:
            found = self.l2.get(name, self._row_id(name, key))
        except StorageUnavailable as exc:
            if not self._shared_l2:
                raise
            self._degraded(exc)
            found = None
        if found is not None and found["expires_at"] <= now:
            found = None
        if counted:
            self.count(name, 1 if found is not None else 2)
        if found is None:
            return None
        if on_l2_hit is not None:
            on_l2_hit(found)
        if use_l1 and self.epoch(name) == epoch:
            expires = min(found["expires_at"].timestamp(), stamp + self.l1_ttl)
            self.l1.put(name, key, dict(found), expires, found.get("user_id"))
        return found

    def _keep(
        self, name: str, key_values: Sequence[str], values: Mapping[str, Any], ttl: Any
    ) -> Row:
        key_columns = TABLES[name][1]
        key = cache_key(key_values)
        lifetime = check_ttl(self.config.ttls.get(name, DEFAULT_TTLS[name]) if ttl is None else ttl)
        now = self.now()
        row: Row = {
            "id": self._row_id(name, key),
            **dict(zip(key_columns, key_values, strict=True)),
            **values,
            "created_at": now,
            "expires_at": now + lifetime,
        }
        try:
            stored = self.l2.put(name, row)
        except StorageUnavailable as exc:
            if not self._shared_l2:
                raise
            self._degraded(exc)
            stored = row
        self.publish(Invalidation(keys=((name, key),)))
        if self.use_l1:
            expires = min(stored["expires_at"].timestamp(), now.timestamp() + self.l1_ttl)
            self.l1.put(name, key, dict(stored), expires, stored.get("user_id"))
        return stored

    def _compute_once(self, name: str, key: str, compute: Callable[[], T]) -> T:
        value, _ = self.flights.run((name, key), compute)
        return value

    def _maybe_flush_hits(self) -> None:
        with self._lock:
            pending = len(self._pending_hits)
        if not pending or not self.use_l1:
            return
        if pending >= FLUSH_HITS or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush_hit_counts()

    def flush_hit_counts(self) -> int:
        """Add the hits served in process to the table's hit counts; how many."""
        with self._lock:
            pending, self._pending_hits = self._pending_hits, {}
            self._last_flush = time.monotonic()
        try:
            for row_id, hits in pending.items():
                self.l2.add_hits("llm_response", row_id, hits)
        except StorageUnavailable as exc:
            if not self._shared_l2:
                raise
            self._degraded(exc)  # hit counts are statistics: these are lost
        return sum(pending.values())

    # ------------------------------------------------------------------ maintenance

    def clean_expired(self) -> dict[str, int]:
        """Remove expired entries from the tables (and L1); how many per cache."""
        self.flush_hit_counts()
        now = self.now()
        removed = {name: self.l2.delete_expired(name, now) for name in TABLES}
        self.l1.drop_expired(now.timestamp())
        return removed

    def clean_all_expired_cache(self) -> dict[str, int]:
        """The original API's name for :meth:`clean_expired`."""
        return self.clean_expired()

    def stats(self) -> dict[str, CacheStats]:
        """Hits, misses, hit rate and entries per cache (and ``"entity"`` reads)."""
        self.flush_hit_counts()
        now = self.now()
        out: dict[str, CacheStats] = {}
        for name in TABLES:
            entries = self.l2.count(name, now)
            in_l1 = self.l1.count(name.__eq__)
            out[name] = self._stats(name, entries, in_l1)
        entity_entries = self.l1.count(lambda ns: ns.startswith("entity:"))
        out["entity"] = self._stats("entity", entity_entries, entity_entries)
        return out

    def _stats(self, name: str, entries: int, l1_entries: int) -> CacheStats:
        with self._lock:
            l1_hits, l2_hits, misses = self._counts.get(name, (0, 0, 0))
        hits = l1_hits + l2_hits
        return CacheStats(
            hits=hits,
            misses=misses,
            hit_rate=hits / (hits + misses) if hits + misses else 0.0,
            entries=entries,
            l1_hits=l1_hits,
            l2_hits=l2_hits,
            l1_entries=l1_entries,
        )

    def invalidate(self, table: str | None = None, id: str | None = None) -> None:
        """Forget cached rows: one row, a table's rows, or (no arguments) everything."""
        if table is None:
            self.publish(Invalidation(everything=True))
        elif id is None:
            self.publish(Invalidation(namespaces=(f"entity:{table}",)))
        else:
            self.publish(Invalidation(keys=((f"entity:{table}", id),)))

    def export_user(self, user_id: str) -> dict[str, Any]:
        """The user's cache entries, JSON-ready."""
        out: dict[str, list[dict[str, Any]]] = {}
        for name in TABLES:
            rows = self.l2.user_rows(name, user_id)
            out[name] = [{k: _plain(v) for k, v in row.items() if k != "id"} for row in rows]
        return {"cache": out}

    def erase_user(self, user_id: str) -> None:
        """Remove every entry about the user, here and in the other processes."""
        for name in TABLES:
            self.l2.delete_user(name, user_id)
        self.publish(Invalidation(users=(user_id,)))

    def close(self) -> None:
        """Stop listening, write pending hit counts, leave the bus."""
        if self._stop_listening is not None:
            self._stop_listening()
        bus.leave(self._bus_url, self)
        try:
            self.flush_hit_counts()
        except ClonestoreError as exc:
            log.warning("cache hit counts not written: %s", exc)
        self.l1.clear()
        self.l2.close()


def cache_key(values: Sequence[str]) -> str:
    """The L1 key of a seed-cache entry: its key columns, joined unambiguously."""
    return values[0] if len(values) == 1 else json.dumps(list(values), ensure_ascii=False)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
