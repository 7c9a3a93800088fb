"""Rate limiting for clonestore: ``store.ratelimit``.

Enable it by name, with the default tier policies::

    store = clonestore.open(url, plugins=["ratelimit"])
    decision = store.ratelimit.check_and_increment(user_id, "chat", limit=100, window_seconds=60)

or configure it with a plugin object (store options go to the backend, so
the plugin carries its own)::

    from clonestore_ratelimit import Policy, RateLimitPlugin

    limiter = RateLimitPlugin(
        tiers={"free": {"chat": Policy(20, 60), "*": Policy(60, 60)},
               "pro": {"*": Policy(600, 60, "sliding_window")},
               "enterprise": {"*": Policy(100, 1, "token_bucket")}},
        enforce={"document.create": "uploads", "*": "writes"},
    )
    store = clonestore.open(url, plugins=[limiter])

Counters live in the store's backend by default. ``storage="redis://host:6379/0"``
keeps them in a shared store instead, found by URL scheme through the
``clonestore_shared_stores`` hook (the ``clonestore_redis`` plugin serves
``redis://``, ``rediss://`` and ``redis+cluster://``); ``on_unavailable``
says what a check decides when that store cannot be reached.

With ``enforce``, every write whose context has an ``actor_id`` counts against
the actor's tier policy for the endpoint of the first matching action pattern,
and a write over the policy is refused with :class:`clonestore.RateLimited`.
See ``docs/plugins.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from clonestore import ConfigurationError, Operation, Store, TableSpec, hookimpl
from clonestore.maintenance import MaintenanceTask
from clonestore.plugin_helpers import open_shared_store
from clonestore.secrets import redact_url
from clonestore.services import RateLimitService
from clonestore_ratelimit._algorithms import MAX_ATTEMPTS
from clonestore_ratelimit._maintenance import TASK as MAINTENANCE
from clonestore_ratelimit._policies import (
    ALGORITHMS,
    DEFAULT_TIERS,
    Decision,
    EndpointUsage,
    Policy,
    Usage,
    parse_enforce,
    parse_tiers,
)
from clonestore_ratelimit._service import ON_UNAVAILABLE, RateLimitConfig, RateLimiter, TierOf
from clonestore_ratelimit._storage import KIND, BucketState, CounterStore, WindowCount
from clonestore_ratelimit._tables import BUCKETS, WINDOWS

__all__ = [
    "ALGORITHMS",
    "DEFAULT_TIERS",
    "MAX_ATTEMPTS",
    "ON_UNAVAILABLE",
    "BucketState",
    "CounterStore",
    "Decision",
    "EndpointUsage",
    "Policy",
    "RateLimitConfig",
    "RateLimitPlugin",
    "RateLimiter",
    "Usage",
    "WindowCount",
    "plugin",
    "ratelimit_of",
]


class RateLimitPlugin:
    """The rate-limit plugin; attaches a :class:`RateLimiter` as ``store.ratelimit``.

    :param tiers: ``{tier: {endpoint: policy}}``; a policy is a :class:`Policy`,
        a mapping of its fields or a ``(limit, window_seconds[, algorithm])``
        tuple; endpoint ``"*"`` is the tier's fallback. Default: :data:`DEFAULT_TIERS`.
    :param default_tier: the tier of callers that are not users.
    :param enforce: ``{action pattern: endpoint}`` (``fnmatch`` patterns, first
        match wins): refuse writes over the actor's policy. Only a plugin created
        with ``enforce`` has the write hook, so stores without enforcement pay
        nothing on writes.
    :param tier_of: ``tier_of(user_id) -> tier or None``; by default the user's
        ``subscription_tier``, cached for ``tier_ttl`` seconds.
    :param durable: keep counters in durable tables. By default they are
        ``ephemeral`` (a table option): a backend declaring that capability may
        skip durability for them (several times faster per check; a crash
        empties them, so callers then start a fresh window). Admission stays
        exact either way: the option changes durability, never isolation.
    :param storage: the URL of a shared store for the counters (``redis://...``)
        instead of the store's backend; see :data:`~clonestore_ratelimit._storage.KIND`.
    :param on_unavailable: what a check decides when the counters cannot be
        reached: ``"open"`` admits, ``"closed"`` refuses (``retry_after`` one
        second), ``"raise"`` raises ``StorageUnavailable``. Default: ``"open"``
        with ``storage``, ``"raise"`` without (the database itself is down).
    """

    def __new__(cls, **config: Any) -> RateLimitPlugin:
        if config.get("enforce") and cls is RateLimitPlugin:
            cls = _EnforcingRateLimitPlugin
        return object.__new__(cls)

    def __init__(
        self,
        *,
        tiers: Mapping[str, Mapping[str, Any]] | None = None,
        default_tier: str = "free",
        enforce: Mapping[str, str] | None = None,
        tier_of: TierOf | None = None,
        tier_ttl: float = 30.0,
        durable: bool = False,
        storage: str | None = None,
        on_unavailable: str | None = None,
    ) -> None:
        if storage is not None and (not isinstance(storage, str) or "://" not in storage):
            raise ConfigurationError(
                f"storage must be a shared store's URL (scheme://...), got {storage!r}"
            )
        self.durable = durable
        self.storage = storage
        self.config = RateLimitConfig(
            tiers=parse_tiers(DEFAULT_TIERS if tiers is None else tiers),
            default_tier=default_tier,
            enforce=parse_enforce(enforce),
            tier_of=tier_of,
            tier_ttl=tier_ttl,
            on_unavailable=on_unavailable or ("open" if storage else "raise"),
        )

    def __repr__(self) -> str:
        durable = ", durable" if self.durable else ""
        storage = f", storage={redact_url(self.storage)}" if self.storage else ""
        return f"<{type(self).__name__} tiers={sorted(self.config.tiers)}{durable}{storage}>"

    @hookimpl
    def clonestore_tables(self) -> Sequence[TableSpec]:
        """Counters (fixed and sliding windows) and token buckets, ephemeral unless durable."""
        return [attrs.evolve(spec, ephemeral=not self.durable) for spec in (WINDOWS, BUCKETS)]

    @hookimpl
    def clonestore_migrations(self) -> Mapping[str, str]:
        """Its tables' versioned migrations (``clonestore migrate --plugins ratelimit``)."""
        return {"ratelimit": "clonestore_ratelimit.migrations"}

    @hookimpl
    def clonestore_store_opened(self, store: Store) -> None:
        """Attach ``store.ratelimit``."""
        storage: CounterStore | None = None
        if self.storage is not None:
            storage = open_shared_store(store.hook, KIND, self.storage, CounterStore)
        limiter = RateLimiter(
            store,
            self.config,
            can_enforce=isinstance(self, _EnforcingRateLimitPlugin),
            storage=storage,
        )
        store.attach("ratelimit", limiter)

    @hookimpl
    def clonestore_store_closed(self, store: Store) -> None:
        """Release the counter store's connections."""
        limiter: RateLimiter = store.services["ratelimit"]
        limiter.storage.close()

    @hookimpl
    def clonestore_maintenance_tasks(self, store: Store) -> Sequence[MaintenanceTask]:
        """``ratelimit.windows``, run by ``store.maintain()``."""
        return [MAINTENANCE]

    @hookimpl
    def clonestore_export_user(self, store: Store, user_id: str) -> Mapping[str, Any]:
        """The user's usage statistics."""
        limiter: RateLimiter = store.services["ratelimit"]
        return limiter.export_user(user_id)

    @hookimpl
    def clonestore_erase_user(self, store: Store, user_id: str) -> None:
        """Remove the user's counters and buckets."""
        limiter: RateLimiter = store.services["ratelimit"]
        limiter.erase_user(user_id)


class _EnforcingRateLimitPlugin(RateLimitPlugin):
    """A rate-limit plugin that also refuses writes over policy."""

    @hookimpl
    def clonestore_before_write(self, store: Store, op: Operation) -> None:
        """Count the write against its actor's policy; refuse it when over."""
        limiter: RateLimiter = store.services["ratelimit"]
        limiter.enforce(op)


#: The plugin enabled by name (``plugins=["ratelimit"]``): default tiers, no enforcement.
plugin = RateLimitPlugin()


#: The core types ``store.ratelimit`` as :class:`clonestore.services.RateLimitService`; mypy
#: checks here that :class:`RateLimiter` implements it.
_IMPLEMENTS: type[RateLimitService] = RateLimiter


def ratelimit_of(store: Store) -> RateLimiter:
    """``store.ratelimit`` as the plugin's own :class:`RateLimiter`, with every type precise.

    :raises ConfigurationError: the store was not opened with this plugin.
    """
    service = store.services.get("ratelimit")
    if not isinstance(service, RateLimiter):
        raise ConfigurationError(
            "this store was not opened with the ratelimit plugin; "
            "open it with clonestore.open(url, plugins=['ratelimit'])"
        )
    return service
