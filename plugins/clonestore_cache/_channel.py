"""How caches of one database tell each other what changed.

* In one process, caches of stores on the same URL share an in-process bus.
* Across processes on PostgreSQL, invalidations travel by ``LISTEN``/``NOTIFY``:
  through the backend's optional ``listen_notify`` capability
  (:class:`clonestore.spi.ListenNotify`) when it has one, else through this
  module's :class:`PostgresChannel`, which opens its own psycopg2 connections
  from the store URL.
* Elsewhere (SQLite shared by several processes) nothing travels: a cached
  entry lives at most the L1 time to live.
"""

from __future__ import annotations

import json
import logging
import select
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final, Protocol

import attrs

from clonestore import StorageUnavailable

__all__ = ["CHANNEL", "Invalidation", "PostgresChannel", "bus"]

log = logging.getLogger("clonestore.cache")

#: The NOTIFY channel the cache uses.
CHANNEL: Final = "clonestore_cache"
#: PostgreSQL refuses payloads of 8,000 bytes or more.
MAX_PAYLOAD: Final = 7_000
#: libpq connection parameters kept from the store URL and options.


@attrs.frozen
class Invalidation:
    """What changed: single keys, whole namespaces, a user's entries, or everything.

    A namespace is ``"entity:<table>"`` for cached rows and the cache's name
    (``"embedding"``...) for the seed caches.
    """

    keys: tuple[tuple[str, str], ...] = ()
    namespaces: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    everything: bool = False

    def __bool__(self) -> bool:
        return bool(self.keys or self.namespaces or self.users or self.everything)

    def encode(self, origin: str) -> str:
        """JSON text under PostgreSQL's payload limit (coarser when it would not fit)."""
        body: dict[str, Any] = {"o": origin}
        if self.everything:
            body["a"] = True
        else:
            body.update(k=[list(k) for k in self.keys], n=list(self.namespaces), u=list(self.users))
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) <= MAX_PAYLOAD:
            return text
        coarse = Invalidation(namespaces=tuple({ns for ns, _ in self.keys} | set(self.namespaces)))
        if self.users or len(coarse.encode(origin).encode()) > MAX_PAYLOAD:
            return json.dumps({"o": origin, "a": True})
        return coarse.encode(origin)

    @classmethod
    def decode(cls, payload: str) -> tuple[str, Invalidation]:
        """``(origin, invalidation)``; anything unreadable means everything."""
        try:
            body = json.loads(payload)
            if body.get("a"):
                return str(body["o"]), cls(everything=True)
            return str(body["o"]), cls(
                keys=tuple((str(ns), str(k)) for ns, k in body.get("k", ())),
                namespaces=tuple(str(ns) for ns in body.get("n", ())),
                users=tuple(str(u) for u in body.get("u", ())),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return "", cls(everything=True)


class Receiver(Protocol):
    def receive(self, invalidation: Invalidation) -> None: ...


class _Bus:
    """Caches of stores on the same URL in this process."""

    def __init__(self) -> None:
        self._members: dict[str, weakref.WeakSet[Receiver]] = {}
        self._lock = threading.Lock()

    def join(self, url: str, member: Receiver) -> None:
        with self._lock:
            self._members.setdefault(url, weakref.WeakSet()).add(member)

    def leave(self, url: str, member: Receiver) -> None:
        with self._lock:
            members = self._members.get(url)
            if members is not None:
                members.discard(member)
                if not members:
                    del self._members[url]

    def publish(self, url: str, sender: Receiver, invalidation: Invalidation) -> None:
        with self._lock:
            members = [m for m in self._members.get(url, ()) if m is not sender]
        for member in members:
            member.receive(invalidation)


#: The process's bus.
bus: Final = _Bus()




class PostgresChannel:
    """``LISTEN``/``NOTIFY`` over psycopg2 connections of its own.

    Implements :class:`clonestore.spi.ListenNotify` for backends that do not.
    ``connected`` is set while the listening connection is up.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._sender: Any = None
        self._send_lock = threading.Lock()
        self.connected = threading.Event()
        self._listeners: list[_Listener] = []

    def notify(self, channel: str, payload: str) -> None:
        import psycopg2

        with self._send_lock:
            for attempt in (1, 2):
                try:
                    if self._sender is None or self._sender.closed:
                        self._sender = psycopg2.connect(self._dsn)
                        self._sender.autocommit = True
                    with self._sender.cursor() as cur:
                        cur.execute("SELECT pg_notify(%s, %s)", (channel, payload))
                    return
                except psycopg2.Error as exc:
                    self._close_sender()
                    if attempt == 2:
                        raise StorageUnavailable(f"cannot send cache invalidation: {exc}") from exc

    def listen(self, channel: str, callback: Callable[[str | None], None]) -> Callable[[], None]:
        listener = _Listener(self._dsn, channel, callback, self.connected)
        self._listeners.append(listener)
        listener.start()
        return listener.stop

    def _close_sender(self) -> None:
        if self._sender is not None:
            try:
                self._sender.close()
            finally:
                self._sender = None

    def close(self) -> None:
        for listener in self._listeners:
            listener.stop()
        with self._send_lock:
            self._close_sender()


class _Listener(threading.Thread):
    """Receives notifications; on a lost connection, reports ``None`` and reconnects."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        callback: Callable[[str | None], None],
        connected: threading.Event,
    ) -> None:
        super().__init__(name=f"clonestore-listen-{channel}", daemon=True)
        self._dsn = dsn
        self._channel = channel
        self._callback = callback
        self._connected = connected
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=2.0)

    def run(self) -> None:
        import psycopg2
        from psycopg2 import sql

        backoff = 0.1
        while not self._stopping.is_set():
            conn = None
            try:
                conn = psycopg2.connect(self._dsn)
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                # Anything may have changed while no one listened.
                self._callback(None)
                self._connected.set()
                backoff = 0.1
                while not self._stopping.is_set():
                    if select.select([conn], [], [], 0.2)[0]:
                        conn.poll()
                        while conn.notifies:
                            self._callback(conn.notifies.pop(0).payload)
            except (psycopg2.Error, OSError, ValueError) as exc:
                if not self._stopping.is_set():
                    log.warning("cache invalidation listener lost its connection: %s", exc)
            except Exception:  # a callback bug must not end invalidation for good
                log.exception("cache invalidation listener failed")
            finally:
                self._connected.clear()
                if conn is not None:
                    conn.close()
            if not self._stopping.is_set():
                self._callback(None)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
