"""The types of the services the built-in plugins attach: ``store.cache``,
``store.ratelimit`` and ``store.audit``.

The core never imports a plugin, so it describes each service as a
:class:`typing.Protocol` of its public methods; the plugin's own class
(``clonestore_cache.Cache``, ``clonestore_ratelimit.RateLimiter``,
``clonestore_audit.AuditLog``) implements it, which mypy checks in the plugin
and a test keeps complete. So ``store.cache.get_embeding(...)`` is a type
error, as ``store.usres`` is. Values the plugins define (``Decision``,
``AuditEntry``, ``CacheStats``...) are typed ``Any`` here; for their precise
types, use the plugin's accessor: ``clonestore_audit.audit_of(store)`` returns
the ``AuditLog`` itself (likewise ``cache_of``, ``ratelimit_of``).

A third party's service is reached with ``store.services["name"]`` (or an
accessor of its own); only the built-in services are attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

__all__ = ["AuditService", "CacheService", "RateLimitService"]

Seconds = float | timedelta | None


class CacheService(Protocol):
    """``store.cache``: the cache plugin's service (``clonestore_cache.Cache``)."""

    def set_embedding(
        self,
        query_hash: str,
        embedding: Sequence[float],
        ttl: Seconds = None,
        *,
        model: str | None = None,
        user_id: str | None = None,
    ) -> None: ...

    def get_embedding(self, query_hash: str) -> list[float] | None: ...

    def get_or_compute_embedding(
        self,
        query_hash: str,
        compute: Callable[[], Sequence[float]],
        *,
        model: str | None = None,
        user_id: str | None = None,
        ttl: Seconds = None,
    ) -> list[float]: ...

    def set_vector_search_results(
        self, query_hash: str, user_id: str, results: Sequence[Any], ttl: Seconds = None
    ) -> None: ...

    def get_vector_search_results(self, query_hash: str, user_id: str) -> list[Any] | None: ...

    def get_or_compute_vector_search_results(
        self,
        query_hash: str,
        user_id: str,
        compute: Callable[[], Sequence[Any]],
        *,
        ttl: Seconds = None,
    ) -> list[Any]: ...

    def set_llm_response(
        self,
        prompt_hash: str,
        response: str,
        provider: str,
        ttl: Seconds = None,
        *,
        user_id: str | None = None,
    ) -> None: ...

    def get_llm_response(self, prompt_hash: str) -> Any: ...

    def get_or_compute_llm_response(
        self,
        prompt_hash: str,
        compute: Callable[[], tuple[str, str]],
        *,
        user_id: str | None = None,
        ttl: Seconds = None,
    ) -> Any: ...

    def flush_hit_counts(self) -> int: ...

    def clean_expired(self) -> dict[str, int]: ...

    def clean_all_expired_cache(self) -> dict[str, int]: ...

    def stats(self) -> dict[str, Any]: ...

    def invalidate(self, table: str | None = None, id: str | None = None) -> None: ...

    def export_user(self, user_id: str) -> dict[str, Any]: ...

    def erase_user(self, user_id: str) -> None: ...


class RateLimitService(Protocol):
    """``store.ratelimit``: the rate limiter's service (``clonestore_ratelimit.RateLimiter``)."""

    @property
    def config(self) -> Any: ...

    def configure(
        self,
        *,
        tiers: Mapping[str, Mapping[str, Any]] | None = None,
        default_tier: str | None = None,
        enforce: Mapping[str, str] | None = None,
        tier_of: Callable[[str], str | None] | None = None,
    ) -> None: ...

    def tier_of(self, user_id: str) -> str: ...

    def policy_for(self, user_id: str, endpoint: str, tier: str | None = None) -> Any: ...

    def check_and_increment(
        self,
        user_id: str,
        endpoint: str,
        limit: int | None = None,
        window_seconds: int | None = None,
        *,
        algorithm: str | None = None,
        tier: str | None = None,
    ) -> Any: ...

    def status(
        self,
        user_id: str,
        endpoint: str,
        limit: int | None = None,
        window_seconds: int | None = None,
        *,
        algorithm: str | None = None,
        tier: str | None = None,
    ) -> Any: ...

    def get_status(
        self, user_id: str, endpoint: str, window_seconds: int, limit: int | None = None
    ) -> Any: ...

    def cleanup(self, older_than: timedelta | float = timedelta(days=1)) -> int: ...

    def usage(self, user_id: str) -> Any: ...

    def export_user(self, user_id: str) -> dict[str, Any]: ...

    def erase_user(self, user_id: str) -> None: ...


class AuditService(Protocol):
    """``store.audit``: the audit plugin's service (``clonestore_audit.AuditLog``)."""

    @property
    def guarded(self) -> bool: ...

    def log(
        self,
        action: str,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        result: str = "success",
        details: Any = None,
        actor_id: str | None = None,
        subject_id: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        error: str | None = None,
        **original: Any,
    ) -> Any: ...

    def find(
        self,
        *,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        actor_id: str | None = None,
        subject_id: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        result: str | None = None,
        request_id: str | None = None,
    ) -> list[Any]: ...

    def find_by_user(
        self, user_id: str, *, limit: int = 100, offset: int = 0, since: datetime | None = None
    ) -> list[Any]: ...

    def find_by_user_id(
        self, user_id: str, *, limit: int = 100, offset: int = 0, since: datetime | None = None
    ) -> list[Any]: ...

    def user_statistics(self, user_id: str, days: int = 30) -> Any: ...

    def purge(self, older_than_days: float = 90) -> int: ...

    def verify(
        self, owner: str | None = None, *, expect_head: tuple[int, str] | None = None
    ) -> Any: ...

    def head(self, owner: str | None = None) -> tuple[int, str]: ...

    def anchor(self) -> tuple[int, str]: ...

    def export_user(self, user_id: str) -> dict[str, Any]: ...

    def erase_user(self, user_id: str) -> int: ...
