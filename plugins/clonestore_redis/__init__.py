"""Redis and Redis Cluster for clonestore's shared plugin state.

Offers, through the ``clonestore_shared_stores`` hook, the cache's second
level (``CachePlugin(l2="redis://...")``, with invalidations by pub/sub) and
the rate limiter's counters (``RateLimitPlugin(storage="redis://...")``, one
Lua script per check). Registered by entry point (group ``clonestore``,
name ``redis``) and always loaded, like a backend plugin; it needs the
``redis`` package (``pip install 'clonestore[redis]'``) only when used.

URLs: ``redis://host:6379/0``, ``rediss://...`` (TLS), ``redis+cluster://host:7000``
(any node of a cluster); ``?prefix=app:`` puts every key under ``app:``
(default ``clonestore:``). See :mod:`clonestore_redis._client` for failures,
:mod:`._counters` and :mod:`._l2` for the keys and what each step costs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from clonestore import hookimpl
from clonestore_redis._client import SCHEMES, RedisClient
from clonestore_redis._counters import RedisCounters
from clonestore_redis._l2 import RedisL2

__all__ = ["KINDS", "RedisClient", "RedisCounters", "RedisL2", "clonestore_shared_stores"]


def _counters(url: str) -> RedisCounters:
    return RedisCounters(RedisClient(url, retries=0))


def _l2(url: str) -> RedisL2:
    return RedisL2(RedisClient(url))


#: What this plugin serves, by the ``kind`` the asking plugin names.
KINDS: Final[dict[str, Callable[[str], Any]]] = {
    "ratelimit.counters": _counters,
    "cache.l2": _l2,
}


@hookimpl
def clonestore_shared_stores(kind: str) -> dict[str, Callable[[str], Any]] | None:
    """Serve ``redis://``, ``rediss://`` and ``redis+cluster://`` for the cache's
    second level and the rate limiter's counters."""
    factory = KINDS.get(kind)
    if factory is None:
        return None
    return dict.fromkeys(SCHEMES, factory)
