"""Read replicas: PostgreSQL streaming replication (hot standbys) behind one backend.

``clonestore.open(primary_url, replicas=[url2, url3])``, or in the URL:
``postgresql://app@primary/db?replica=standby1:5432&replica=standby2`` (a
``replica`` is ``host[:port]``, sharing the primary's user, password and
database, or a whole percent-encoded ``postgresql://`` URL). Each replica has
a pool of its own, with the primary's options.

What goes where:

* Writes, transactions (and every read inside one), schema changes and the
  capabilities (``listen_notify``...) go to the primary.
* A read outside a transaction (``get``, ``select``, ``count``,
  ``aggregate``, ``nearest``) goes to a healthy replica, in turn, unless
  read-your-writes sends it to the primary (below). A read that fails on a
  replica is run on the primary instead, so a dying replica fails no call; a
  table a standby cannot serve (``UNLOGGED`` tables, such as the rate
  limiter's counters) is read on the primary from then on.
* A background monitor checks every replica each ``replica_check_interval``
  seconds (``pg_last_wal_replay_lsn()`` against the primary's
  ``pg_current_wal_lsn()``). A replica that cannot be reached, failed a
  read, left recovery, or lags more than ``max_replica_lag`` seconds is
  skipped until a later check finds it well. With no healthy replica, reads
  go to the primary. ``health()["replicas"]`` reports each one's state, lag
  (seconds and bytes) and reads served.

Read-your-writes (``read_your_writes``):

=================  ===========================================================
``True``/"store"   (default) after this store writes, its reads go to the
                   primary until the monitor has seen a replica replay the
                   write's commit LSN (``pg_current_wal_lsn()`` after the
                   commit); then to replicas that have
``"context"``      the same, tracked per ``store.context(...)`` (a request):
                   one request's writes do not send others' reads to the
                   primary; reads outside any context follow the store
``2.5`` (seconds)  after a write, reads go to the primary for that long (no
                   LSN is read: a bound chosen by the application)
``False``          none: a read may not see the store's own recent writes
=================  ===========================================================

The LSN rule never serves a stale read of the store's (or context's) own
writes: a replica serves it only once it is known to have replayed them.
Writes by other stores and processes are seen on a replica once replayed,
at most ``max_replica_lag`` seconds late.

Options (keywords to ``clonestore.open`` or URL query parameters):
``replicas``/``replica``, ``read_your_writes`` (True), ``max_replica_lag``
(seconds, 5), ``replica_check_interval`` (seconds, 0.1).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from clonestore import BackendError, ClonestoreError, ConfigurationError
from clonestore.plugin_helpers import current_context
from clonestore.query import Expr, OrderBy
from clonestore.spi import Aggregate, Row, TableSpec

from ..sql._backend import ONE
from ..sql._options import positive_float, read_options

__all__ = ["REPLICA_OPTIONS", "ReplicatedBackend", "split_replica_options"]

log = logging.getLogger("clonestore.replicas")

#: The options this module reads (the rest go to every pool).
REPLICA_OPTIONS: Final = (
    "replicas",
    "replica",
    "read_your_writes",
    "max_replica_lag",
    "replica_check_interval",
)
_DEFAULT_CONTEXT: Final = current_context()
#: Contexts whose writes are remembered at most (the oldest are forgotten: their
#: reads then follow the store's own LSN, which is never older).
_CONTEXTS: Final = 10_000
#: SQLSTATE of "cannot access temporary or unlogged relations during recovery".
_UNSERVABLE: Final = "0A000"


def lsn(text: str) -> int:
    """A PostgreSQL LSN (``"16/B374D848"``) as an integer."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def _policy(value: Any) -> bool | str | float:
    if value in (True, "true", "True", "1", "store"):
        return "store"
    if value in (False, "false", "False", "0", "off"):
        return False
    if value == "context":
        return "context"
    try:
        return positive_float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            "read_your_writes must be True ('store'), 'context', seconds, or False; "
            f"got {value!r}"
        ) from None


def split_replica_options(
    url: str, options: Mapping[str, Any]
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(primary URL, replica settings, pool options)``: the replica options taken
    out of the URL's query and the keywords."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = [(k, v) for k, v in query if k in REPLICA_OPTIONS]
    rest = [(k, v) for k, v in query if k not in REPLICA_OPTIONS]
    primary = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    replicas: list[str] = [v for k, v in ours if k in ("replica", "replicas")]
    given: dict[str, Any] = {k: v for k, v in ours if k not in ("replica", "replicas")}
    pool = dict(options)
    for name in REPLICA_OPTIONS:
        if name in pool:
            value = pool.pop(name)
            if name in ("replicas", "replica"):
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, (list, tuple)):
                    raise ConfigurationError("replicas must be a list of URLs or host[:port]")
                replicas.extend(value)
            else:
                given[name] = value
    settings = read_options(
        "postgresql",
        "",
        given,
        {
            "read_your_writes": (_policy, "store"),
            "max_replica_lag": (positive_float, 5.0),
            "replica_check_interval": (positive_float, 0.1),
        },
    )
    settings["replicas"] = [_replica_url(primary, r) for r in replicas]
    return primary, settings, pool


def _replica_url(primary: str, given: Any) -> str:
    """A replica's URL: given whole, or ``host[:port]`` with the primary's credentials."""
    if not isinstance(given, str) or not given:
        raise ConfigurationError(f"a replica is a URL or host[:port], got {given!r}")
    replica: str = unquote(given) if given.startswith("postgres") else given
    if "://" in replica:
        return replica
    parts = urlsplit(primary)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{replica}" if credentials else replica
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class _Replica:
    """One standby: its backend and what the monitor last saw of it."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.label: str = backend.label
        self.reachable = False
        self.replay_lsn = 0
        self.lag_seconds: float | None = None
        self.lag_bytes: int | None = None
        self.error: str | None = None
        self.failed_read = False
        self.reads = 0

    def healthy(self, max_lag: float) -> bool:
        return (
            self.reachable
            and not self.failed_read
            and self.lag_seconds is not None
            and self.lag_seconds <= max_lag
        )


class _TxState(threading.local):
    def __init__(self) -> None:
        self.wrote = False


class ReplicatedBackend:
    """A PostgreSQL primary and its hot standbys, as one :class:`clonestore.spi.Backend`."""

    name = "postgresql"

    def __init__(
        self,
        primary: Any,
        replicas: Sequence[Any],
        *,
        read_your_writes: bool | str | float = "store",
        max_replica_lag: float = 5.0,
        replica_check_interval: float = 0.1,
    ) -> None:
        self.primary = primary
        self.capabilities: frozenset[str] = primary.capabilities
        self.label: str = primary.label
        self.replicas = [_Replica(r) for r in replicas]
        self.read_your_writes = read_your_writes
        self.max_replica_lag = max_replica_lag
        self.check_interval = replica_check_interval
        self.primary_reads = 0
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._tx = _TxState()
        # The commit LSN (or, with a time bound, the monotonic time) of the
        # store's last write, and of each context's.
        self._store_mark = 0.0
        self._context_marks: OrderedDict[Any, float] = OrderedDict()
        self._primary_only: set[str] = set()
        # (monotonic time, primary LSN) samples, for the replicas' lag in seconds.
        self._samples: deque[tuple[float, int]] = deque()
        self._stopping = threading.Event()
        self._check()
        self._monitor = threading.Thread(
            target=self._watch, name="clonestore-replica-monitor", daemon=True
        )
        self._monitor.start()

    def __repr__(self) -> str:
        return f"<ReplicatedBackend {self.label} replicas={[r.label for r in self.replicas]}>"

    def __getattr__(self, name: str) -> Any:
        # Everything else (capabilities such as listen/notify, schema sessions,
        # table_info...) is the primary's.
        if name == "primary":
            raise AttributeError(name)
        return getattr(self.primary, name)

    # ------------------------------------------------------------------ monitor

    def _watch(self) -> None:
        while not self._stopping.wait(self.check_interval):
            try:
                self._check()
            except Exception:  # the monitor must outlive any surprise
                log.exception("replica check failed")

    def _check(self) -> None:
        """Sample the primary's LSN, then each replica's replay LSN and lag."""
        now = time.monotonic()
        try:
            current = lsn(self.primary.execute("SELECT pg_current_wal_lsn()::text", (), ONE)[0])
        except ClonestoreError:
            current = None
        samples = self._samples
        if current is not None:
            samples.append((now, current))
            horizon = now - max(self.max_replica_lag * 2, 1.0)
            while len(samples) > 2 and samples[1][0] < horizon:
                samples.popleft()
        for replica in self.replicas:
            try:
                replay, recovering = replica.backend.execute(
                    "SELECT pg_last_wal_replay_lsn()::text, pg_is_in_recovery()", (), ONE
                )
            except ClonestoreError as exc:
                if replica.reachable or replica.error is None:
                    log.warning("replica %s unreachable: %s", replica.label, exc)
                replica.reachable = False
                replica.error = str(exc)
                continue
            if not recovering or replay is None:
                replica.reachable = False
                replica.error = "not a standby (not in recovery)"
                continue
            replica.replay_lsn = lsn(replay)
            replica.reachable = True
            replica.failed_read = False
            replica.error = None
            replica.lag_seconds = self._lag(replica.replay_lsn, now)
            replica.lag_bytes = None if current is None else max(0, current - replica.replay_lsn)

    def _lag(self, replay: int, now: float) -> float | None:
        """Seconds since the primary first had WAL the replica has not replayed yet
        (0 when it has replayed everything sampled)."""
        if not self._samples:
            return None
        for at, position in self._samples:
            if position > replay:
                return now - at
        return 0.0

    # ------------------------------------------------------------------ routing

    def _mark(self) -> float:
        """What a read in the current scope must wait for (an LSN or a time)."""
        if self.read_your_writes == "context":
            ctx = current_context()
            if ctx != _DEFAULT_CONTEXT:
                return self._context_marks.get(ctx, 0.0)
        return self._store_mark

    def _wrote(self) -> None:
        """A write committed (or ran outside a transaction): remember where it is."""
        policy = self.read_your_writes
        if policy is False or not self.replicas:
            return
        if isinstance(policy, float):
            mark = time.monotonic() + policy
        else:
            try:
                row = self.primary.execute("SELECT pg_current_wal_lsn()::text", (), ONE)
            except ClonestoreError:
                mark = float("inf")  # unknown: read from the primary until a later write
            else:
                mark = float(lsn(row[0]))
        with self._lock:
            self._store_mark = max(self._store_mark, mark)
            if policy == "context":
                ctx = current_context()
                if ctx != _DEFAULT_CONTEXT:
                    marks = self._context_marks
                    marks[ctx] = max(marks.get(ctx, 0.0), mark)
                    marks.move_to_end(ctx)
                    while len(marks) > _CONTEXTS:
                        marks.popitem(last=False)

    def _choose(self, table: str) -> _Replica | None:
        """A replica to read from now, or None for the primary."""
        if not self.replicas or self.primary.in_transaction or table in self._primary_only:
            return None
        mark = self._mark()
        time_bound = isinstance(self.read_your_writes, float)
        if time_bound and mark > time.monotonic():
            return None
        healthy = [
            r
            for r in self.replicas
            if r.healthy(self.max_replica_lag) and (time_bound or r.replay_lsn >= mark)
        ]
        if not healthy:
            return None
        return healthy[next(self._turn) % len(healthy)]

    def _read(self, table: TableSpec, call: Callable[[Any], Any]) -> Any:
        replica = self._choose(table.name)
        if replica is not None:
            try:
                result = call(replica.backend)
            except ClonestoreError as exc:
                if not isinstance(exc, BackendError):
                    replica.failed_read = True  # unreachable: skipped until rechecked
                result = call(self.primary)  # the primary's error, if any, is the answer
                if getattr(exc.orig, "pgcode", None) == _UNSERVABLE:
                    # The primary can, a standby cannot (UNLOGGED tables): stay there.
                    log.info("reading %s from the primary: %s", table.name, exc)
                    self._primary_only.add(table.name)
                self.primary_reads += 1
                return result
            replica.reads += 1
            return result
        self.primary_reads += 1
        return call(self.primary)

    # ------------------------------------------------------------------ reads

    def get(self, table: TableSpec, id: str) -> Row | None:
        """The row with this id, from a replica when read-your-writes allows."""
        return self._read(table, lambda b: b.get(table, id))  # type: ignore[no-any-return]

    def select(
        self,
        table: TableSpec,
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        """Matching rows, from a replica when read-your-writes allows."""
        return self._read(table, lambda b: b.select(table, where, order, limit, offset))  # type: ignore[no-any-return]

    def count(self, table: TableSpec, where: Expr) -> int:
        """How many rows match, from a replica when read-your-writes allows."""
        return self._read(table, lambda b: b.count(table, where))  # type: ignore[no-any-return]

    def aggregate(
        self,
        table: TableSpec,
        where: Expr,
        group_by: Sequence[str],
        aggregates: Mapping[str, Aggregate],
    ) -> list[Row]:
        """One row per group, from a replica when read-your-writes allows."""
        return self._read(table, lambda b: b.aggregate(table, where, group_by, aggregates))  # type: ignore[no-any-return]

    def nearest(self, table: TableSpec, *args: Any, **kwargs: Any) -> Any:
        """Vector search (capability ``vector_search``), routed like any read."""
        return self._read(table, lambda b: b.nearest(table, *args, **kwargs))

    # ------------------------------------------------------------------ writes

    def _write(self, call: Callable[[], Any]) -> Any:
        result = call()
        if self.primary.in_transaction:
            self._tx.wrote = True
        else:
            self._wrote()
        return result

    def insert(self, table: TableSpec, row: Row) -> None:
        """Insert on the primary."""
        self._write(lambda: self.primary.insert(table, row))

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Insert on the primary."""
        self._write(lambda: self.primary.insert_many(table, rows))

    def update(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Row]:
        """Update on the primary."""
        return self._write(lambda: self.primary.update(table, where, changes))  # type: ignore[no-any-return]

    def update_and_insert(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        row: Row,
        copied: Mapping[str, str],
    ) -> Row | None:
        """Update and insert on the primary (capability ``update_and_insert``)."""
        return self._write(  # type: ignore[no-any-return]
            lambda: self.primary.update_and_insert(table, where, changes, into, row, copied)
        )

    def update_and_insert_many(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        rows: Sequence[Row],
        copied: Mapping[str, str],
    ) -> tuple[Row, list[Row]] | None:
        """Update and insert on the primary (capability ``update_and_insert_many``)."""
        return self._write(  # type: ignore[no-any-return]
            lambda: self.primary.update_and_insert_many(table, where, changes, into, rows, copied)
        )

    def delete(self, table: TableSpec, where: Expr) -> int:
        """Delete on the primary."""
        return self._write(lambda: self.primary.delete(table, where))  # type: ignore[no-any-return]

    def upsert(
        self,
        table: TableSpec,
        key: Sequence[str],
        insert_row: Row,
        changes: Mapping[str, Any],
        returning: Sequence[str] | None = None,
    ) -> Row:
        """Upsert on the primary."""
        return self._write(  # type: ignore[no-any-return]
            lambda: self.primary.upsert(table, key, insert_row, changes, returning)
        )

    def create_tables(self, specs: Sequence[TableSpec]) -> None:
        """Create tables on the primary (standbys replay the DDL)."""
        self._write(lambda: self.primary.create_tables(specs))

    def migrate(self, *args: Any, **kwargs: Any) -> list[str]:
        """Apply pending migrations on the primary."""
        return self._write(lambda: self.primary.migrate(*args, **kwargs))  # type: ignore[no-any-return]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction on the primary; its commit LSN is remembered if it wrote."""
        outermost = not self.primary.in_transaction
        if outermost:
            self._tx.wrote = False
        with self.primary.transaction():
            yield
        if outermost and self._tx.wrote:
            self._tx.wrote = False
            self._wrote()

    @property
    def in_transaction(self) -> bool:
        """Whether the calling thread is inside :meth:`transaction`."""
        return bool(self.primary.in_transaction)

    # ------------------------------------------------------------------ lifecycle

    def health(self) -> dict[str, Any]:
        """The primary's health, with ``replicas``: each one's state, lag and reads."""
        out: dict[str, Any] = self.primary.health()
        replicas = []
        for replica in self.replicas:
            replicas.append(
                {
                    "url": replica.label,
                    "ok": replica.reachable,
                    "healthy": replica.healthy(self.max_replica_lag),
                    "lag_seconds": replica.lag_seconds,
                    "lag_bytes": replica.lag_bytes,
                    "reads": replica.reads,
                    **({"error": replica.error} if replica.error else {}),
                }
            )
        out["replicas"] = replicas
        out["primary_reads"] = self.primary_reads
        out["max_replica_lag"] = self.max_replica_lag
        return out

    def close(self) -> None:
        """Stop the monitor and close every pool. Idempotent."""
        self._stopping.set()
        if self._monitor.is_alive() and threading.current_thread() is not self._monitor:
            self._monitor.join(timeout=5)
        try:
            for replica in self.replicas:
                replica.backend.close()
        finally:
            self.primary.close()

