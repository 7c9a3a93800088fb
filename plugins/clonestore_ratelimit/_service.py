"""``store.ratelimit``: checks, status, cleanup, usage and write enforcement."""

from __future__ import annotations

import fnmatch
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import attrs

from clonestore import (
    ConfigurationError,
    Operation,
    RateLimited,
    StorageUnavailable,
    Store,
    ValidationError,
)
from clonestore_ratelimit._algorithms import Counters, from_us, to_us
from clonestore_ratelimit._policies import (
    Decision,
    EndpointUsage,
    Policy,
    Usage,
    check_name,
    parse_enforce,
    parse_tiers,
)
from clonestore_ratelimit._storage import CounterStore, TableCounters

__all__ = ["ON_UNAVAILABLE", "RateLimitConfig", "RateLimiter"]

log = logging.getLogger("clonestore.ratelimit")

#: What a check decides when its counter store cannot be reached: admit the
#: call (``"open"``), refuse it (``"closed"``), or raise ``StorageUnavailable``.
ON_UNAVAILABLE = ("open", "closed", "raise")
#: Seconds a refused caller is told to wait when the counters cannot be reached.
UNAVAILABLE_RETRY = 1.0
#: Seconds between two warnings about unreachable counters.
WARN_EVERY = 10.0

TierOf = Callable[[str], "str | None"]


@attrs.frozen(kw_only=True)
class RateLimitConfig:
    """Validated settings of a rate limiter (see ``RateLimitPlugin``)."""

    tiers: Mapping[str, Mapping[str, Policy]]
    default_tier: str = "free"
    enforce: tuple[tuple[str, str], ...] = ()
    tier_of: TierOf | None = None
    tier_ttl: float = 30.0
    on_unavailable: str = "raise"

    def __attrs_post_init__(self) -> None:
        if self.on_unavailable not in ON_UNAVAILABLE:
            raise ConfigurationError(
                f"on_unavailable must be one of {', '.join(ON_UNAVAILABLE)}; "
                f"got {self.on_unavailable!r}"
            )
        if self.default_tier not in self.tiers:
            raise ConfigurationError(
                f"default tier {self.default_tier!r} has no policies; "
                f"configured tiers: {', '.join(sorted(self.tiers)) or 'none'}"
            )


class RateLimiter:
    """Rate limiting for a store, attached as ``store.ratelimit``.

    Counters live in the store's backend (or in the shared store given as
    ``storage``), so every process using it shares them; time comes from
    ``store.clock``.
    """

    def __init__(
        self,
        store: Store,
        config: RateLimitConfig,
        *,
        can_enforce: bool,
        storage: CounterStore | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._can_enforce = can_enforce
        self.storage: CounterStore = storage or TableCounters(store.backend)
        self._counters = Counters(self.storage, self._now_us)
        self._warned = 0.0
        self._tiers: dict[str, tuple[str, float]] = {}
        self._tiers_lock = threading.Lock()

    # ------------------------------------------------------------------ configuration

    @property
    def config(self) -> RateLimitConfig:
        """The settings in force."""
        return self._config

    def configure(
        self,
        *,
        tiers: Mapping[str, Mapping[str, Any]] | None = None,
        default_tier: str | None = None,
        enforce: Mapping[str, str] | None = None,
        tier_of: TierOf | None = None,
    ) -> None:
        """Change policies at run time (only the arguments given change).

        ``enforce`` needs a plugin created with enforcement
        (``RateLimitPlugin(enforce=...)``): the write hook exists only then.
        """
        changes: dict[str, Any] = {}
        if tiers is not None:
            changes["tiers"] = parse_tiers(tiers)
        if default_tier is not None:
            changes["default_tier"] = default_tier
        if enforce is not None:
            if not self._can_enforce:
                raise ConfigurationError(
                    "this store's rate limiter does not enforce writes; open the store with "
                    "plugins=[RateLimitPlugin(enforce={...})] to enable it"
                )
            changes["enforce"] = parse_enforce(enforce)
        if tier_of is not None:
            changes["tier_of"] = tier_of
        self._config = attrs.evolve(self._config, **changes)
        with self._tiers_lock:
            self._tiers.clear()

    def tier_of(self, user_id: str) -> str:
        """The user's tier: from ``tier_of`` if configured, else the user's
        ``subscription_tier`` (cached for ``tier_ttl`` seconds), else the default."""
        config = self._config
        if config.tier_of is not None:
            return config.tier_of(user_id) or config.default_tier
        now = time.monotonic()
        known = self._tiers.get(user_id)
        if known is not None and known[1] > now:
            return known[0]
        try:
            user = self._store.users.get_or_none(user_id)
        except ValidationError:  # not a user id: an API key, an address...
            user = None
        tier = user.subscription_tier if user is not None else config.default_tier
        with self._tiers_lock:
            if len(self._tiers) > 10_000:
                self._tiers.clear()
            self._tiers[user_id] = (tier, now + config.tier_ttl)
        return tier

    def policy_for(self, user_id: str, endpoint: str, tier: str | None = None) -> Policy:
        """The policy that applies to ``user_id`` calling ``endpoint``."""
        config = self._config
        tier = tier or self.tier_of(user_id)
        policies = config.tiers.get(tier)
        if policies is None:
            policies = config.tiers[config.default_tier]
        policy = policies.get(endpoint) or policies.get("*")
        if policy is None:
            raise ConfigurationError(f"no rate-limit policy for {endpoint!r} in tier {tier!r}")
        return policy

    # ------------------------------------------------------------------ checks

    def _now_us(self) -> int:
        now = self._store.clock()
        if now.tzinfo is None:
            raise ValidationError("store.clock() returned a naive datetime")
        return to_us(now)  # aware datetimes subtract correctly whatever their zone

    def _resolve(
        self,
        user_id: Any,
        endpoint: Any,
        limit: int | None,
        window_seconds: int | None,
        algorithm: str | None,
        tier: str | None,
    ) -> tuple[str, str, Policy]:
        user_id = check_name("user_id", user_id)
        endpoint = check_name("endpoint", endpoint)
        if limit is None and window_seconds is None:
            policy = self.policy_for(user_id, endpoint, tier)
            if algorithm is not None:
                policy = Policy(policy.limit, policy.window_seconds, algorithm)
        elif limit is None or window_seconds is None:
            raise ValidationError("give both limit and window_seconds, or neither (use a policy)")
        else:
            algorithm = algorithm or "fixed_window"
            if type(limit) is int and type(window_seconds) is int and type(algorithm) is str:
                policy = _explicit_policy(limit, window_seconds, algorithm)
            else:
                policy = Policy(limit, window_seconds, algorithm)  # refuses what is wrong
        return user_id, endpoint, policy

    def check_and_increment(
        self,
        user_id: str,
        endpoint: str,
        limit: int | None = None,
        window_seconds: int | None = None,
        *,
        algorithm: str | None = None,
        tier: str | None = None,
    ) -> Decision:
        """Count one call of ``user_id`` to ``endpoint`` and say whether it is allowed.

        Without ``limit`` and ``window_seconds`` the user's tier policy applies
        (``tier`` overrides the user's). ``algorithm`` is ``"fixed_window"``
        (default), ``"sliding_window"`` or ``"token_bucket"``. Exact under
        concurrency; a fixed-window check is one statement.
        """
        user_id, endpoint, policy = self._resolve(
            user_id, endpoint, limit, window_seconds, algorithm, tier
        )
        run = getattr(self._counters, policy.algorithm)
        try:
            decision: Decision = run(
                user_id, endpoint, policy.limit, policy.window_seconds, self._now_us()
            )
        except StorageUnavailable as exc:
            return self._unavailable(exc, policy)
        return decision

    def _unavailable(self, exc: StorageUnavailable, policy: Policy) -> Decision:
        """The decision when the counters cannot be reached (``on_unavailable``)."""
        mode = self._config.on_unavailable
        if mode == "raise":
            raise exc
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY:  # once in a while, not once per call
            self._warned = now
            log.warning("rate-limit counters unreachable, failing %s: %s", mode, exc)
        allowed = mode == "open"
        return Decision(
            allowed=allowed,
            remaining=0,
            reset_at=from_us(self._now_us() + int(UNAVAILABLE_RETRY * 1_000_000)),
            retry_after=0.0 if allowed else UNAVAILABLE_RETRY,
            limit=policy.limit,
        )

    def status(
        self,
        user_id: str,
        endpoint: str,
        limit: int | None = None,
        window_seconds: int | None = None,
        *,
        algorithm: str | None = None,
        tier: str | None = None,
    ) -> Decision:
        """What ``check_and_increment`` would decide now, without counting a call."""
        user_id, endpoint, policy = self._resolve(
            user_id, endpoint, limit, window_seconds, algorithm, tier
        )
        name = {
            "fixed_window": "fixed_status",
            "sliding_window": "sliding_status",
            "token_bucket": "bucket_status",
        }[policy.algorithm]
        try:
            decision: Decision = getattr(self._counters, name)(
                user_id, endpoint, policy.limit, policy.window_seconds, self._now_us()
            )
        except StorageUnavailable as exc:
            return self._unavailable(exc, policy)
        return decision

    def get_status(
        self, user_id: str, endpoint: str, window_seconds: int, limit: int | None = None
    ) -> Decision:
        """The original API's ``getStatus(userId, endpoint, windowSeconds)``: the fixed
        window of ``window_seconds`` now, without counting a call.

        ``remaining`` is measured against ``limit``, else the limit the last
        ``check_and_increment`` in this window used, else the user's policy's.
        """
        user_id = check_name("user_id", user_id)
        endpoint = check_name("endpoint", endpoint)
        Policy(1, window_seconds)  # refuses a window that is not a positive integer
        if limit is None:
            limit = self._counters.window_quota(user_id, endpoint, window_seconds, self._now_us())
        if limit is None:
            limit = self.policy_for(user_id, endpoint).limit
        return self.status(user_id, endpoint, limit, window_seconds)

    def cleanup(self, older_than: timedelta | float = timedelta(days=1)) -> int:
        """Remove windows that ended, and buckets full since, more than
        ``older_than`` ago (a timedelta or seconds); how many rows went."""
        if not isinstance(older_than, timedelta):
            if isinstance(older_than, bool) or not isinstance(older_than, (int, float)):
                raise ValidationError("must be a timedelta or seconds", field="older_than")
            older_than = timedelta(seconds=older_than)
        if older_than < timedelta(0):
            raise ValidationError("must not be negative", field="older_than")
        cutoff_us = self._now_us() - older_than // timedelta(microseconds=1)
        return self.storage.cleanup(cutoff_us)

    def usage(self, user_id: str) -> Usage:
        """Requests, admissions and refusals of ``user_id`` per endpoint."""
        user_id = check_name("user_id", user_id)
        windows, buckets = self.storage.usage(user_id)
        per: dict[str, dict[str, Any]] = {}

        def entry(endpoint: str) -> dict[str, Any]:
            return per.setdefault(
                endpoint, {"requests": 0, "admitted": 0, "refused": 0, "last": None}
            )

        for window in windows:
            item = entry(window["endpoint"])
            refused = max(0, window["count"] - window["quota"]) + window["refused"]
            item["requests"] += window["count"]
            item["refused"] += refused
            item["admitted"] += window["count"] - refused
            if item["last"] is None or window["window_start"] > item["last"]:
                item["last"] = window["window_start"]
        for bucket in buckets:
            item = entry(bucket["endpoint"])
            item["requests"] += bucket["admitted"] + bucket["refused"]
            item["admitted"] += bucket["admitted"]
            item["refused"] += bucket["refused"]
        endpoints = {
            name: EndpointUsage(
                endpoint=name,
                requests=item["requests"],
                admitted=item["admitted"],
                refused=item["refused"],
                last_window_start=None if item["last"] is None else from_us(item["last"]),
            )
            for name, item in sorted(per.items())
        }
        return Usage(
            user_id=user_id,
            requests=sum(e.requests for e in endpoints.values()),
            admitted=sum(e.admitted for e in endpoints.values()),
            refused=sum(e.refused for e in endpoints.values()),
            endpoints=endpoints,
        )

    # ------------------------------------------------------------------ plugin hooks

    def enforce(self, op: Operation) -> None:
        """Refuse ``op`` with :class:`RateLimited` when its actor is over the policy
        of the first ``enforce`` pattern matching its action."""
        rules = self._config.enforce
        actor = op.context.actor_id
        if not rules or actor is None:
            return
        for pattern, endpoint in rules:
            if fnmatch.fnmatchcase(op.action, pattern):
                decision = self.check_and_increment(actor, endpoint)
                if not decision.allowed:
                    raise RateLimited(
                        f"{op.action} refused: rate limit of {endpoint!r} reached; "
                        f"retry in {decision.retry_after:.3g}s",
                        retry_after=decision.retry_after,
                    )
                return

    def export_user(self, user_id: str) -> dict[str, Any]:
        usage = self.usage(user_id)
        return {"ratelimit": attrs.asdict(usage, recurse=True)}

    def erase_user(self, user_id: str) -> None:
        self.storage.erase_user(user_id)
        self._counters.forget_user(user_id)
        with self._tiers_lock:
            self._tiers.pop(user_id, None)


@functools.lru_cache(maxsize=256)
def _explicit_policy(limit: int, window_seconds: int, algorithm: str) -> Policy:
    """A policy from explicit arguments, validated once per combination."""
    return Policy(limit, window_seconds, algorithm)
