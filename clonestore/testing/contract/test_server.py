"""Contract: a backend whose URL names a server survives losing it.

The kit puts a TCP relay of its own between the store and the server named by
the URL's host and port, opens a store through it, then cuts the relay (every
connection dropped, new ones refused) as a crashed server or a broken network
would: calls must raise :class:`~clonestore.StorageUnavailable` (retryable)
and ``health()`` must say ``ok: False`` without raising. When the relay comes
back, the same store works again. Backends without a server in their URL
(memory://, files) skip these tests, saying so.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

import clonestore
from clonestore import StorageUnavailable
from clonestore.testing import StoreFactory
from clonestore.testing.contract._builders import new_user


class Relay:
    """Forwards TCP connections from a loopback port to ``target``; :meth:`cut` drops them
    all and refuses new ones until :meth:`restore`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.port = 0
        self.restore()

    def restore(self) -> None:
        """Listen (again, on the same port) and relay new connections."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every relayed connection and stop listening."""
        if self._listener is not None:
            # shutdown() first: it wakes the thread blocked in accept() (close() alone
            # would leave the port listening until accept returns).
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.cut()


def _server(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None or parts.hostname.startswith("%2F"):
        pytest.skip(f"the backend under test names no server host and port in its URL ({url})")
    return parts.hostname, parts.port


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def test_server_down_is_storage_unavailable_and_health_says_so(
    store_factory: StoreFactory,
) -> None:
    """Server cut off: StorageUnavailable, health() not ok; server back: the store works."""
    server = _server(store_factory.url)
    store_factory()  # a clean database, as every kit test starts from
    relay = Relay(server)
    try:
        store = clonestore.open(_through(store_factory.url, relay.port))
        try:
            user = new_user(store)
            assert store.backend.health()["ok"] is True
            relay.cut()
            with pytest.raises(StorageUnavailable):
                store.users.get(user.id)
            with pytest.raises(StorageUnavailable):
                new_user(store)
            health = store.backend.health()
            assert health["ok"] is False, health
            relay.restore()
            deadline = time.monotonic() + 30
            while True:  # a pool may hand out a dead connection or two first
                try:
                    assert store.users.get(user.id) == user
                    break
                except StorageUnavailable:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            assert store.backend.health()["ok"] is True
        finally:
            store.close()
    finally:
        relay.close()


def test_server_unreachable_at_open_is_storage_unavailable(store_factory: StoreFactory) -> None:
    """A server refusing connections is StorageUnavailable, at open or at the first call."""
    _server(store_factory.url)
    relay = Relay(("127.0.0.1", 9))
    port = relay.port
    relay.close()  # nothing listens on this port now
    try:
        store = clonestore.open(_through(store_factory.url, port))
    except StorageUnavailable:
        return
    try:
        assert store.backend.health()["ok"] is False
        with pytest.raises(StorageUnavailable):
            store.users.count()
    finally:
        store.close()
