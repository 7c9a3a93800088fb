"""One connection to Redis or Redis Cluster, from a URL, with clonestore's errors.

``redis://[:password@]host:6379/0?prefix=app:``, ``rediss://`` (TLS) or
``redis+cluster://host:7000?prefix=app:`` (any node of the cluster; the others
are discovered). Query parameters other than ``prefix`` go to the ``redis``
package (``socket_timeout=0.5``...). Every key starts with ``prefix``
(default ``clonestore:``), so several applications share one server and a
test run removes only its own keys.

A command is retried at once when its connection failed (``retries``, one by
default; none for the rate limiter's counting scripts, which must never count
twice). A server that cannot be reached raises :class:`clonestore.StorageUnavailable`
at once, and for ``retry_interval`` seconds after that (default 1) without
trying again, so an outage costs each call microseconds, not a timeout. Any
other Redis failure is :class:`clonestore.BackendError` with ``orig``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from clonestore import BackendError, ClonestoreError, ConfigurationError, StorageUnavailable
from clonestore.secrets import redact_url

__all__ = ["SCHEMES", "RedisClient"]

#: The URL schemes served, and whether each is a cluster.
SCHEMES: Final = {"redis": False, "rediss": False, "redis+cluster": True}
DEFAULT_PREFIX: Final = "clonestore:"
#: Seconds to wait for a connection and for a reply, unless the URL says otherwise.
DEFAULT_TIMEOUT: Final = "1.0"

T = TypeVar("T")


class RedisClient:
    """A ``redis.Redis`` (or ``redis.cluster.RedisCluster``) with key prefix and error
    translation; thread-safe (the ``redis`` package pools connections)."""

    def __init__(self, url: str, *, retry_interval: float = 1.0, retries: int = 1) -> None:
        try:
            import redis
            import redis.cluster
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:
            raise ConfigurationError(
                "redis:// storage needs the redis package: pip install 'clonestore[redis]'"
            ) from None
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ConfigurationError(f"not a Redis URL: {redact_url(url)!r}")
        self.label = redact_url(url)
        self.cluster = SCHEMES[parts.scheme]
        query = dict(parse_qsl(parts.query))
        self.prefix = query.pop("prefix", DEFAULT_PREFIX)
        if "{" in self.prefix or "}" in self.prefix:
            raise ConfigurationError("a Redis key prefix must not contain '{' or '}' (hash tags)")
        query.setdefault("socket_timeout", DEFAULT_TIMEOUT)
        query.setdefault("socket_connect_timeout", DEFAULT_TIMEOUT)
        scheme = "redis" if self.cluster else parts.scheme
        plain = urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), ""))
        self.retry_interval = retry_interval
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._errors: tuple[type[BaseException], ...] = (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            redis.exceptions.ClusterDownError,
            redis.exceptions.TryAgainError,
            redis.exceptions.BusyLoadingError,
            OSError,
        )
        self._redis_error = redis.exceptions.RedisError
        # ``retries`` quick retries of a command whose connection failed: one covers a
        # connection the server closed (a restart). Counting scripts take none: a
        # script whose reply was lost may have counted, and must not count twice.
        try:
            if self.cluster:
                self.redis: Any = redis.cluster.RedisCluster.from_url(
                    plain, decode_responses=True, retry=Retry(NoBackoff(), retries)
                )
            else:
                self.redis = redis.Redis.from_url(
                    plain, decode_responses=True, retry=Retry(NoBackoff(), retries)
                )
        except self._errors as exc:
            raise StorageUnavailable(f"cannot reach Redis at {self.label}: {exc}") from exc
        except (ValueError, TypeError, self._redis_error) as exc:
            raise ConfigurationError(f"bad Redis URL {self.label!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"<RedisClient {self.label}>"

    def key(self, *parts: str) -> str:
        """The full key of ``parts`` joined by ``:``, under the prefix."""
        return self.prefix + ":".join(parts)

    def run(self, call: Callable[[], T]) -> T:
        """Run ``call()`` (which talks to Redis) with clonestore's errors."""
        if self._down_until:
            self._check_down()
        try:
            result = call()
        except Exception as exc:
            raise self._translate(exc) from exc
        if self._down_until:
            self._down_until = 0.0
        return result

    def _check_down(self) -> None:
        if time.monotonic() < self._down_until:
            raise StorageUnavailable(f"Redis at {self.label} is unreachable (retrying soon)")

    def _translate(self, exc: Exception) -> Exception:
        """The clonestore error for a failure of the ``redis`` package."""
        if isinstance(exc, ClonestoreError):
            return exc
        if isinstance(exc, self._errors):
            with self._lock:
                self._down_until = time.monotonic() + self.retry_interval
            return StorageUnavailable(f"cannot reach Redis at {self.label}: {exc}")
        if isinstance(exc, self._redis_error):
            return BackendError(f"Redis at {self.label} failed: {exc}", orig=exc)
        return exc

    def script(self, source: str) -> Callable[..., Any]:
        """A Lua script run by its digest (``EVALSHA``, one round trip), loaded on
        first use and again after a server restart forgot it."""
        import hashlib

        from redis.exceptions import NoScriptError

        sha = hashlib.sha1(source.encode()).hexdigest()
        evalsha = self.redis.evalsha

        def call(keys: list[str], args: list[Any]) -> Any:
            # run()'s work, inline: this is every rate-limit check's path. Never
            # retried: a script whose reply was lost may have counted.
            if self._down_until:
                self._check_down()
            try:
                result = evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                result = self.run(lambda: self.redis.eval(source, len(keys), *keys, *args))
            except Exception as exc:
                raise self._translate(exc) from exc
            if self._down_until:
                self._down_until = 0.0
            return result

        return call

    def close(self) -> None:
        """Close the connections. Idempotent."""
        with contextlib.suppress(Exception):  # a vanished server must not fail a close
            self.redis.close()
