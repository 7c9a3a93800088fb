"""The cache's second level on Redis (``clonestore_cache.L2Store``), with its
invalidations carried by Redis pub/sub (``clonestore.spi.ListenNotify``).

An entry is a hash ``c:<cache>:<row id>`` of ``v`` (the row as JSON, its
datetimes as ISO text) and ``h`` (its hit count), expiring when the entry
does (its time to live, counted by Redis). ``c:u:<cache>:<user id>`` is the
set of a user's entries, for ``export_user`` and ``erase_user``.

Invalidations are published on ``<prefix><channel>``; every process's cache
subscribes, so L1 copies are dropped across processes as with PostgreSQL's
``LISTEN``/``NOTIFY``. Messages are sent at once (Redis has no transaction
shared with the database). After a lost connection the listener reports
``None`` (anything may have changed) and reconnects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from clonestore_redis._client import RedisClient

__all__ = ["RedisL2"]

log = logging.getLogger("clonestore.redis")

_ADD_HITS: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HINCRBY', KEYS[1], 'h', ARGV[1])
end
return 0
"""


def _encode(row: Mapping[str, Any]) -> str:
    plain: dict[str, Any] = {}
    stamps: list[str] = []
    for name, value in row.items():
        if isinstance(value, datetime):
            stamps.append(name)
            value = value.isoformat()
        plain[name] = value
    return json.dumps({"row": plain, "dt": stamps}, ensure_ascii=False, allow_nan=False)


def _decode(text: str, hits: str | None) -> dict[str, Any]:
    body = json.loads(text)
    row: dict[str, Any] = body["row"]
    for name in body["dt"]:
        row[name] = datetime.fromisoformat(row[name])
    if hits is not None and "hit_count" in row:
        row["hit_count"] = int(hits)
    return row


class RedisL2:
    """Cache entries on Redis or Redis Cluster, and pub/sub for invalidations."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self._add_hits = client.script(_ADD_HITS)
        #: Set while the invalidation listener is subscribed.
        self.connected = threading.Event()
        #: Set once the listener has subscribed or failed a first time.
        self.settled = threading.Event()
        self._listeners: list[_Subscriber] = []

    def __repr__(self) -> str:
        return f"<RedisL2 {self.client.label}>"

    def _key(self, name: str, row_id: str) -> str:
        return self.client.key("c", name, row_id)

    def _user_key(self, name: str, user_id: str) -> str:
        return self.client.key("c", "u", name, user_id)

    # ------------------------------------------------------------------ entries

    def get(self, name: str, row_id: str) -> dict[str, Any] | None:
        key = self._key(name, row_id)
        text, hits = self.client.run(lambda: self.client.redis.hmget(key, "v", "h"))
        return None if text is None else _decode(text, hits)

    def put(self, name: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Keep ``row`` until its ``expires_at`` (a time to live from its ``created_at``)."""
        key = self._key(name, row["id"])
        ttl_ms = max(1, int((row["expires_at"] - row["created_at"]).total_seconds() * 1000))
        text = _encode(row)
        user_id = row.get("user_id")
        redis = self.client.redis

        def write() -> None:
            if user_id is not None:  # indexed first: the index is a superset
                index = self._user_key(name, user_id)
                redis.sadd(index, row["id"])
                redis.pexpire(index, ttl_ms, gt=True) or redis.pexpire(index, ttl_ms, nx=True)
            pipe = redis.pipeline(transaction=True)  # one key: fine on a cluster
            pipe.delete(key)
            pipe.hset(key, mapping={"v": text, "h": int(row.get("hit_count") or 0)})
            pipe.pexpire(key, ttl_ms)
            pipe.execute()

        self.client.run(write)
        return dict(row)

    def add_hits(self, name: str, row_id: str, hits: int) -> None:
        self._add_hits([self._key(name, row_id)], [hits])

    def _scan(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        redis = self.client.redis

        def read() -> list[tuple[str, dict[str, Any]]]:
            keys = list(redis.scan_iter(match=self._key(name, "*"), count=500))
            pipe = redis.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(key, "v", "h")
            values = pipe.execute() if keys else []
            return [
                (key, _decode(text, hits))
                for key, (text, hits) in zip(keys, values, strict=True)
                if text is not None
            ]

        return self.client.run(read)

    def count(self, name: str, now: datetime) -> int:
        return sum(1 for _, row in self._scan(name) if row["expires_at"] > now)

    def delete_expired(self, name: str, now: datetime) -> int:
        expired = [key for key, row in self._scan(name) if row["expires_at"] <= now]
        if expired:
            redis = self.client.redis
            self.client.run(lambda: [redis.delete(key) for key in expired])
        return len(expired)

    def _user_entries(self, name: str, user_id: str) -> tuple[str, list[str]]:
        index = self._user_key(name, user_id)
        ids = self.client.run(lambda: sorted(self.client.redis.smembers(index)))
        return index, ids

    def user_rows(self, name: str, user_id: str) -> list[dict[str, Any]]:
        _, ids = self._user_entries(name, user_id)
        rows = (self.get(name, row_id) for row_id in ids)
        return [row for row in rows if row is not None and row.get("user_id") == user_id]

    def delete_user(self, name: str, user_id: str) -> int:
        index, ids = self._user_entries(name, user_id)
        keys = [self._key(name, row_id) for row_id in ids]
        redis = self.client.redis
        # One key per DEL: a user's entries live in many slots of a cluster.
        removed = self.client.run(lambda: sum(int(redis.delete(key)) for key in keys))
        self.client.run(lambda: redis.delete(index))
        return removed

    # ------------------------------------------------------------------ pub/sub

    def notify(self, channel: str, payload: str) -> None:
        """Publish ``payload`` to every subscriber of ``channel`` (at once)."""
        full = self.client.prefix + channel
        self.client.run(lambda: self.client.redis.publish(full, payload))

    def listen(self, channel: str, callback: Callable[[str | None], None]) -> Callable[[], None]:
        """Call ``callback(payload)`` from a thread for each message; ``None`` after
        a reconnection. Returns the function that stops listening."""
        subscriber = _Subscriber(self.client, self.client.prefix + channel, callback, self)
        self._listeners.append(subscriber)
        subscriber.start()
        return subscriber.stop

    def close(self) -> None:
        for subscriber in self._listeners:
            subscriber.stop()
        self.client.close()


class _Subscriber(threading.Thread):
    def __init__(
        self,
        client: RedisClient,
        channel: str,
        callback: Callable[[str | None], None],
        owner: RedisL2,
    ) -> None:
        super().__init__(name=f"clonestore-redis-{channel}", daemon=True)
        self._client = client
        self._channel = channel
        self._callback = callback
        self._owner = owner
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=3.0)

    def run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            pubsub = None
            try:
                pubsub = self._client.redis.pubsub()
                pubsub.subscribe(self._channel)
                # Wait for the server to confirm the subscription before saying so.
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message is not None and message.get("type") == "subscribe":
                        break
                else:
                    return
                self._callback(None)  # anything may have changed while no one listened
                self._owner.connected.set()
                self._owner.settled.set()
                backoff = 0.1
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=0.2)
                    if message is not None and message.get("type") == "message":
                        self._callback(message["data"])
            except Exception as exc:  # a lost server or a callback bug: reconnect
                if not self._stopping.is_set():
                    # Once per outage, not once per attempt.
                    level = logging.WARNING if backoff == 0.1 else logging.DEBUG
                    log.log(level, "cache invalidation subscriber lost Redis: %s", exc)
            finally:
                self._owner.settled.set()
                self._owner.connected.clear()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
            if not self._stopping.is_set():
                self._callback(None)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
