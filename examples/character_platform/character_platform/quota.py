"""The daily generation quota: N generations per user per UTC day, by subscription tier.

Counting is one atomic SPI ``upsert`` on the ``generation_usage`` table: insert
``used=1`` for (user, day), or add ``Increment(1)`` to the existing row, and
read the new value back in the same statement. When the new value is over the
limit the savepoint around it is rolled back and :class:`QuotaExceeded` is
raised, so a refused request consumes nothing. Two requests racing for the
last unit cannot both get it on any backend: the upsert serializes them on
the counter row (PostgreSQL row lock, SQLite write lock, memory:// lock), and
the second sees the first's increment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs

from character_platform.records import USAGE
from clonestore import RateLimited, ValidationError
from clonestore.query import parse_where
from clonestore.spi import Increment

if TYPE_CHECKING:
    from clonestore import Store

__all__ = ["TIER_LIMITS", "DailyQuota", "QuotaExceeded", "QuotaStatus", "utc_day"]

#: Generations allowed per UTC day, by the user's ``subscription_tier``.
TIER_LIMITS: Final[Mapping[str, int]] = {"free": 5, "pro": 50, "enterprise": 500}


def utc_day(moment: datetime) -> str:
    """The UTC calendar day of ``moment`` as ``YYYY-MM-DD``."""
    return moment.astimezone(UTC).date().isoformat()


def _seconds_to_midnight(moment: datetime) -> float:
    now = moment.astimezone(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return (midnight - now).total_seconds()


class QuotaExceeded(RateLimited):
    """The user has used today's generations; ``retry_after`` is the time to UTC midnight."""

    def __init__(self, message: str, *, retry_after: float, limit: int, used: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.limit = limit
        self.used = used


@attrs.frozen(kw_only=True)
class QuotaStatus:
    """A user's quota for one UTC day."""

    user_id: str
    tier: str
    day: str
    used: int
    limit: int

    @property
    def remaining(self) -> int:
        """Generations still allowed that day."""
        return max(self.limit - self.used, 0)


class DailyQuota:
    """``store.generation_quota``: the per-user daily generation counter."""

    def __init__(self, store: Store, limits: Mapping[str, int] = TIER_LIMITS) -> None:
        self.store = store
        self.limits = dict(limits)

    def limit_for(self, tier: str) -> int:
        """The daily limit of a subscription tier."""
        try:
            return self.limits[tier]
        except KeyError:
            raise ValidationError(f"no quota for tier {tier!r}", field="tier") from None

    def status(self, user_id: str, day: str | None = None) -> QuotaStatus:
        """How much of ``day``'s quota (default: today, UTC) the user has used."""
        user = self.store.users.get(user_id)
        day = day or utc_day(self.store.clock())
        where = parse_where(USAGE, {"user_id": user.id, "day": day})
        rows = self.store.gateway.select(USAGE, where, (), 1, action="generation_usage.get")
        used = rows[0]["used"] if rows else 0
        tier = user.subscription_tier
        return QuotaStatus(
            user_id=user.id, tier=tier, day=day, used=used, limit=self.limit_for(tier)
        )

    def consume(self, user_id: str) -> QuotaStatus:
        """Count one generation for the user today, or raise :class:`QuotaExceeded`.

        Call it inside the transaction that records the generation, so both
        happen or neither does.
        """
        user = self.store.users.get(user_id)
        limit = self.limit_for(user.subscription_tier)
        now = self.store.clock()
        day = utc_day(now)
        insert_row: dict[str, Any] = {
            "id": self.store.id_factory(),
            "user_id": user.id,
            "day": day,
            "used": 1,
            "updated_at": now,
        }
        changes = {"used": Increment(1), "updated_at": now}
        with self.store.transaction():  # a savepoint inside the caller's transaction
            row = self.store.gateway.upsert(
                USAGE,
                ("user_id", "day"),
                insert_row,
                changes,
                action="generation_usage.consume",
                key=user.id,
            )
            if row["used"] > limit:
                raise QuotaExceeded(
                    f"{user.subscription_tier} tier allows {limit} generations per day; "
                    f"used {limit} on {day}",
                    retry_after=_seconds_to_midnight(now),
                    limit=limit,
                    used=limit,
                )
        return QuotaStatus(
            user_id=user.id, tier=user.subscription_tier, day=day, used=row["used"], limit=limit
        )
