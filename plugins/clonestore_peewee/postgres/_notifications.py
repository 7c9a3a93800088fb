"""``LISTEN``/``NOTIFY`` for the PostgreSQL backend (capability ``listen_notify``).

Sending goes through the store's own connection (``SELECT pg_notify``), so a
message sent inside a transaction is delivered when the outermost transaction
commits, and never if it rolls back. Each listener has a dedicated connection
(a pooled one would be handed to other calls) watched by a daemon thread; when
that connection drops, the thread reconnects and calls ``callback(None)``:
messages may have been lost meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
from collections.abc import Callable
from typing import Any, Final

__all__ = ["MAX_PAYLOAD_BYTES", "Listener", "quote_channel"]

log = logging.getLogger("clonestore.postgresql")

#: PostgreSQL refuses payloads of 8,000 bytes or more; the SPI promises 7,000.
MAX_PAYLOAD_BYTES: Final = 7_000
_POLL_SECONDS: Final = 0.5
_MAX_BACKOFF_SECONDS: Final = 5.0


def quote_channel(channel: str) -> str:
    """The channel as a quoted identifier (``pg_notify`` takes it verbatim, so
    ``LISTEN`` must not fold its case)."""
    return '"' + channel.replace('"', '""') + '"'


class Listener(threading.Thread):
    """Delivers the notifications of one channel to ``callback``, from its own thread."""

    def __init__(
        self,
        connect: Callable[[], Any],
        channel: str,
        callback: Callable[[str | None], None],
        describe: Callable[[BaseException], str],
    ) -> None:
        super().__init__(name=f"clonestore-listen-{channel}", daemon=True)
        self._connect = connect
        self._channel = channel
        self._callback = callback
        self._describe = describe
        self._stopping = threading.Event()
        self._conn: Any = None

    def open(self) -> None:
        """Connect and ``LISTEN`` before returning: no message sent after this is missed."""
        self._conn = self._listen()
        self.start()

    def stop(self) -> None:
        """Stop listening and close the connection (idempotent)."""
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=2 * _POLL_SECONDS + 1)

    def _listen(self) -> Any:
        conn = self._connect()
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"LISTEN {quote_channel(self._channel)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _deliver(self, payload: str | None) -> None:
        try:
            self._callback(payload)
        except Exception:  # a listener's bug must not stop the others' messages
            log.exception("LISTEN %s: the callback failed", self._channel)

    def run(self) -> None:
        backoff = 0.1
        conn = self._conn
        while not self._stopping.is_set():
            try:
                if conn is None:
                    conn = self._conn = self._listen()
                    backoff = 0.1
                    self._deliver(None)  # the gap may have swallowed messages
                readable, _, _ = select.select([conn], [], [], _POLL_SECONDS)
                if readable:
                    conn.poll()
                    while conn.notifies:
                        self._deliver(conn.notifies.pop(0).payload)
            except Exception as exc:
                log.warning(
                    "LISTEN %s: connection lost (%s); reconnecting",
                    self._channel,
                    self._describe(exc),
                )
                self._close(conn)
                conn = self._conn = None
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
        self._close(conn)

    @staticmethod
    def _close(conn: Any) -> None:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
