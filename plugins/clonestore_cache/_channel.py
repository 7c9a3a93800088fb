"""How caches of one database tell each other what changed.

* In one process, caches of stores on the same URL share an in-process bus.
* Across processes, invalidations travel through the backend's optional
  ``listen_notify`` capability (:class:`clonestore.spi.ListenNotify`).
* On a backend without it, nothing travels between processes: a cached entry
  lives at most the L1 time to live.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from typing import Any, Final, Protocol

import attrs

__all__ = ["CHANNEL", "MAX_PAYLOAD", "Invalidation", "bus"]

log = logging.getLogger("clonestore.cache")

#: The listen_notify channel the cache uses.
CHANNEL: Final = "clonestore_cache"
#: The largest payload ``listen_notify`` carries (bytes of UTF-8).
MAX_PAYLOAD: Final = 7_000


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
        """JSON text under the SPI's payload limit (coarser when it would not fit)."""
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
