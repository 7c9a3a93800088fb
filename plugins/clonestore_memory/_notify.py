"""Capability ``listen_notify`` on memory://: messages between the stores of one
database in this process (private to the package).

The reference behaviour the kit holds other backends to: a message sent inside
a transaction is delivered when the outermost transaction commits and never
when it (or the savepoint it was sent in) rolls back; callbacks run on one
background thread per process, in the order the messages were sent. No message
is ever lost, so listeners never receive ``None``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Final

from clonestore import ValidationError

__all__ = ["MAX_PAYLOAD_BYTES", "Channels", "check_payload"]

#: What the SPI promises a payload may be at most (UTF-8 bytes).
MAX_PAYLOAD_BYTES: Final = 7_000

log = logging.getLogger("clonestore.memory")

Callback = Callable[[str | None], None]


class _Subscription:
    __slots__ = ("active", "callback", "channel")

    def __init__(self, channel: str, callback: Callback) -> None:
        self.channel = channel
        self.callback = callback
        self.active = True


class _Dispatcher:
    """The process's delivery thread, started on first use."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[list[_Subscription], str]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def deliver(self, subscriptions: list[_Subscription], payload: str) -> None:
        if not subscriptions:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="clonestore-memory-notify", daemon=True
                )
                self._thread.start()
        self._queue.put((subscriptions, payload))

    def _run(self) -> None:
        while True:
            subscriptions, payload = self._queue.get()
            for subscription in subscriptions:
                if not subscription.active:  # stopped after the message was sent
                    continue
                try:
                    subscription.callback(payload)
                except Exception:  # one listener's bug must not stop the others' messages
                    log.exception("listen %s: the callback failed", subscription.channel)


_DISPATCHER: Final = _Dispatcher()


class Channels:
    """The listeners of one database, and the messages its open transaction holds back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[str, list[_Subscription]] = {}
        #: Messages sent inside the open transaction: ``(channel, payload)``.
        self.pending: list[tuple[str, str]] = []

    def listen(self, channel: str, callback: Callback) -> Callable[[], None]:
        subscription = _Subscription(channel, callback)
        with self._lock:
            self._subscriptions.setdefault(channel, []).append(subscription)

        def stop() -> None:
            subscription.active = False
            with self._lock:
                members = self._subscriptions.get(channel, [])
                if subscription in members:
                    members.remove(subscription)

        return stop

    def send(self, channel: str, payload: str) -> None:
        """Deliver now (the caller holds no transaction)."""
        with self._lock:
            subscriptions = list(self._subscriptions.get(channel, ()))
        _DISPATCHER.deliver(subscriptions, payload)


def check_payload(payload: str) -> None:
    """Refuse what the SPI does not promise to carry, as every backend does."""
    if not isinstance(payload, str):
        raise ValidationError("must be text", field="payload")
    try:
        size = len(payload.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValidationError("text may not contain lone surrogates", field="payload") from None
    if size > MAX_PAYLOAD_BYTES:
        raise ValidationError(
            f"notification payloads are at most {MAX_PAYLOAD_BYTES} bytes", field="payload"
        )
