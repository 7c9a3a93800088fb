"""The rate limiter's counters on Redis (``clonestore_ratelimit.CounterStore``).

Every counting step is one Lua script, so one round trip and atomic on the
server: exact admission across threads and processes. All keys of one user
carry the same hash tag (a digest of the user id), so on Redis Cluster one
user's windows, buckets and index live in one slot and a script may touch
them together.

Keys (under the client's prefix; ``T`` is the user's tag):

* ``rl:{T}:w:<seconds>:<start_us>:<endpoint>``: a window, a hash of ``c``
  (calls), ``q`` (quota), ``r`` (sliding refusals), ``e``, ``s``; it expires
  one window after its end (the sliding window reads the previous one).
* ``rl:{T}:b:<endpoint>``: a token bucket, a hash of ``t`` (TAT, µs), ``a``,
  ``r``, ``e``; it expires one window after it is full again.
* ``rl:{T}:i``: the set of the user's keys, for ``usage`` and ``erase_user``.

Times are the store clock's, passed in; Redis's clock only drives expiry.
``cleanup`` removes nothing: expiry does that work (it returns 0).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from clonestore_redis._client import RedisClient

__all__ = ["RedisCounters"]

# A window's expiry instant is fixed (one window after its end), so the key's and
# the index's expiry are set once, when the window's first call creates it.
_HIT: Final = """
local c = redis.call('HINCRBY', KEYS[1], 'c', 1)
redis.call('HSET', KEYS[1], 'q', ARGV[3])
if c == 1 then
  redis.call('HSET', KEYS[1], 'e', ARGV[1], 's', ARGV[2], 'r', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('SADD', KEYS[2], KEYS[1])
  if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
  end
  return {1, 0}
end
return {c, tonumber(redis.call('HGET', KEYS[1], 'r'))}
"""

# GCRA, as clonestore_ratelimit.CounterStore.take describes it. Numbers stay
# below 2^53 (exact in Lua's doubles); written back with %d, never %.14g.
_TAKE: Final = """
local now = tonumber(ARGV[2])
local interval = tonumber(ARGV[3])
local latest = tonumber(ARGV[4])
local tat = tonumber(redis.call('HGET', KEYS[1], 't'))
local allowed = 1
if tat == nil then
  tat = now + interval
  redis.call('HSET', KEYS[1], 'e', ARGV[1], 'a', 1, 'r', 0)
  redis.call('SADD', KEYS[2], KEYS[1])
elseif tat < now then
  tat = now + interval
  redis.call('HINCRBY', KEYS[1], 'a', 1)
elseif tat <= latest then
  tat = tat + interval
  redis.call('HINCRBY', KEYS[1], 'a', 1)
else
  allowed = 0
  redis.call('HINCRBY', KEYS[1], 'r', 1)
end
redis.call('HSET', KEYS[1], 't', string.format('%d', tat))
local ttl = math.floor((tat - now) / 1000) + tonumber(ARGV[5])
redis.call('PEXPIRE', KEYS[1], ttl)
if redis.call('PTTL', KEYS[2]) < ttl then
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return {allowed, tat}
"""


def user_tag(user_id: str) -> str:
    """The hash tag of a user's keys: a digest, so any user id makes a valid tag."""
    return hashlib.blake2b(user_id.encode(), digest_size=16).hexdigest()


class RedisCounters:
    """Rate-limit counters on Redis or Redis Cluster."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        self._hit = client.script(_HIT)
        self._take = client.script(_TAKE)
        self._tags: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<RedisCounters {self.client.label}>"

    def _base(self, user_id: str) -> str:
        tag = self._tags.get(user_id)
        if tag is None:
            if len(self._tags) > 10_000:
                self._tags.clear()
            tag = self._tags[user_id] = self.client.key("rl:{" + user_tag(user_id) + "}:")
        return tag

    def _window_key(self, user_id: str, endpoint: str, window: int, start_us: int) -> str:
        return f"{self._base(user_id)}w:{window}:{start_us}:{endpoint}"

    def hit(
        self, user_id: str, endpoint: str, window: int, start_us: int, limit: int, now_us: int
    ) -> dict[str, Any]:
        """One script: add the call, set the quota and the expiry, index the key."""
        key = self._window_key(user_id, endpoint, window, start_us)
        keep_ms = max(1, (start_us + 2 * window * 1_000_000 - now_us) // 1000)
        count, refused = self._hit(
            [key, self._base(user_id) + "i"], [endpoint, start_us, limit, keep_ms]
        )
        return {
            "endpoint": endpoint,
            "window_start": start_us,
            "count": int(count),
            "quota": limit,
            "refused": int(refused),
            "ref": key,
        }

    def read(
        self, user_id: str, endpoint: str, window: int, start_us: int
    ) -> dict[str, Any] | None:
        key = self._window_key(user_id, endpoint, window, start_us)
        count, quota, refused = self.client.run(lambda: self.client.redis.hmget(key, "c", "q", "r"))
        if count is None:
            return None
        return {
            "endpoint": endpoint,
            "window_start": start_us,
            "count": int(count),
            "quota": int(quota or 0),
            "refused": int(refused or 0),
            "ref": key,
        }

    def refuse(self, user_id: str, window_seconds: int, window: Any) -> None:
        key = window["ref"]
        self.client.run(lambda: self.client.redis.hincrby(key, "r", 1))

    def take(
        self, user_id: str, endpoint: str, now_us: int, interval: int, latest: int
    ) -> tuple[bool, int]:
        """One script: the whole GCRA step."""
        base = self._base(user_id)
        keep_ms = max(1, (latest - now_us + interval) // 1000)
        allowed, tat = self._take(
            [f"{base}b:{endpoint}", base + "i"], [endpoint, now_us, interval, latest, keep_ms]
        )
        return bool(allowed), int(tat)

    def bucket(self, user_id: str, endpoint: str) -> int | None:
        key = f"{self._base(user_id)}b:{endpoint}"
        tat = self.client.run(lambda: self.client.redis.hget(key, "t"))
        return None if tat is None else int(tat)

    def _members(self, user_id: str) -> tuple[str, list[str], list[dict[str, str]]]:
        index = self._base(user_id) + "i"
        redis = self.client.redis

        def read() -> tuple[list[str], list[dict[str, str]]]:
            keys = sorted(redis.smembers(index))
            pipe = redis.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            return keys, pipe.execute() if keys else []

        keys, values = self.client.run(read)
        return index, keys, values

    def usage(self, user_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The user's live windows and buckets (expired ones leave the index)."""
        index, keys, values = self._members(user_id)
        windows: list[dict[str, Any]] = []
        buckets: list[dict[str, Any]] = []
        gone = []
        for key, value in zip(keys, values, strict=True):
            if not value:
                gone.append(key)
            elif "t" in value:
                buckets.append(
                    {
                        "endpoint": value["e"],
                        "tat_us": int(value["t"]),
                        "admitted": int(value.get("a", 0)),
                        "refused": int(value.get("r", 0)),
                    }
                )
            else:
                windows.append(
                    {
                        "endpoint": value["e"],
                        "window_start": int(value["s"]),
                        "count": int(value["c"]),
                        "quota": int(value.get("q", 0)),
                        "refused": int(value.get("r", 0)),
                        "ref": key,
                    }
                )
        if gone:
            self.client.run(lambda: self.client.redis.srem(index, *gone))
        return windows, buckets

    def cleanup(self, cutoff_us: int) -> int:
        """Nothing to do: windows and buckets expire by themselves."""
        return 0

    def erase_user(self, user_id: str) -> None:
        """Remove the user's keys (all in one slot) and their index."""
        index, keys, _ = self._members(user_id)
        self.client.run(lambda: self.client.redis.delete(*keys, index))

    def close(self) -> None:
        self.client.close()
