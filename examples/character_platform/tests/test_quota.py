"""The daily generation quota by subscription tier, exact under concurrency."""

from __future__ import annotations

import threading

import pytest
from character_platform import Character, CharacterPlatform, QuotaExceeded

from clonestore import RateLimited, Store, User
from clonestore.testing import FrozenClock
from clonestore.testing.plugin import StoreFactory


@pytest.fixture
def mira(platform: Store, ada: User) -> Character:
    """Ada's character."""
    character: Character = platform.characters.create(
        user_id=ada.id, name="Mira", prompt="a fox spirit", style_type="anime"
    )
    return character


def test_free_tier_allows_five_a_day(
    platform: Store, ada: User, mira: Character, clock: FrozenClock
) -> None:
    """The sixth generation of a free user's day is refused, stores nothing, and says
    when the quota resets (UTC midnight)."""
    for _ in range(5):
        platform.generations.enqueue(ada.id, mira.id)
    with pytest.raises(QuotaExceeded) as refused:
        platform.generations.enqueue(ada.id, mira.id)
    assert isinstance(refused.value, RateLimited)
    assert (refused.value.limit, refused.value.used) == (5, 5)
    assert 12 * 3600 - 60 < refused.value.retry_after <= 12 * 3600  # the clock starts at noon
    assert platform.generations.count() == 5
    status = platform.generation_quota.status(ada.id)
    assert (status.tier, status.used, status.limit, status.remaining) == ("free", 5, 5, 0)


def test_the_quota_resets_each_utc_day(
    platform: Store, ada: User, mira: Character, clock: FrozenClock
) -> None:
    """A new UTC day starts from zero; the previous day's count is kept."""
    for _ in range(5):
        platform.generations.enqueue(ada.id, mira.id)
    yesterday = platform.generation_quota.status(ada.id).day
    clock.advance(12 * 3600)
    platform.generations.enqueue(ada.id, mira.id)
    assert platform.generation_quota.status(ada.id).used == 1
    assert platform.generation_quota.status(ada.id, yesterday).used == 5


def test_the_limit_follows_the_users_tier(platform: Store, ada: User, mira: Character) -> None:
    """Upgrading the user's subscription tier raises today's limit at once."""
    for _ in range(5):
        platform.generations.enqueue(ada.id, mira.id)
    platform.users.update(ada.id, subscription_tier="pro")
    platform.generations.enqueue(ada.id, mira.id)
    status = platform.generation_quota.status(ada.id)
    assert (status.tier, status.used, status.limit) == ("pro", 6, 50)
    platform.users.update(ada.id, subscription_tier="enterprise")
    assert platform.generation_quota.status(ada.id).limit == 500


def test_limits_are_configurable_per_plugin(
    store_factory: StoreFactory, clock: FrozenClock
) -> None:
    """CharacterPlatform(tier_limits=...) sets the daily limits of a store."""
    store = store_factory(
        plugins=[CharacterPlatform(tier_limits={"free": 1, "pro": 2, "enterprise": 3})],
        clock=clock,
    )
    user = store.users.create(email="c@example.com", name="C")
    character = store.characters.create(user_id=user.id, name="X", prompt="p", style_type="pixel")
    store.generations.enqueue(user.id, character.id)
    with pytest.raises(QuotaExceeded):
        store.generations.enqueue(user.id, character.id)


def test_a_refused_batch_stores_and_counts_nothing(
    platform: Store, ada: User, mira: Character
) -> None:
    """create_many over the limit is all or nothing: no generation, no usage counted."""
    platform.generations.enqueue(ada.id, mira.id)
    batch = [{"user_id": ada.id, "character_id": mira.id}] * 5
    with pytest.raises(QuotaExceeded):
        platform.generations.create_many(batch)
    assert platform.generations.count() == 1
    assert platform.generation_quota.status(ada.id).used == 1


def test_a_refusal_inside_a_transaction_undoes_only_itself(
    platform: Store, ada: User, mira: Character
) -> None:
    """A caller that catches QuotaExceeded inside its transaction keeps its other writes."""
    for _ in range(5):
        platform.generations.enqueue(ada.id, mira.id)
    with platform.transaction():
        platform.characters.update(mira.id, tags=["fox"])
        with pytest.raises(QuotaExceeded):
            platform.generations.enqueue(ada.id, mira.id)
    assert platform.characters.get(mira.id).tags == ("fox",)
    assert platform.generation_quota.status(ada.id).used == 5


def test_concurrent_requests_get_exactly_the_limit(
    platform: Store, ada: User, mira: Character
) -> None:
    """Requests racing for the last units: exactly the limit succeed, the rest are refused."""
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def request() -> None:
        start.wait(timeout=30)
        try:
            platform.generations.enqueue(ada.id, mira.id)
            outcome = "ok"
        except QuotaExceeded:
            outcome = "refused"
        except Exception as exc:  # reported in the assertion below
            outcome = f"error: {exc!r}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=request) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["ok"] * 5 + ["refused"] * 7
    assert platform.generations.count() == 5
    assert platform.generation_quota.status(ada.id).used == 5
