"""The generation queue: pending -> running -> succeeded | failed, claimed exactly once."""

from __future__ import annotations

import threading

import pytest
from character_platform import Character, Generation

from clonestore import InvalidTransition, NotFound, Store, User, ValidationError


@pytest.fixture
def mira(platform: Store, ada: User) -> Character:
    """Ada's private character."""
    character: Character = platform.characters.create(
        user_id=ada.id, name="Mira", prompt="a fox spirit", style_type="anime"
    )
    return character


def test_enqueue_queues_a_pending_generation(platform: Store, ada: User, mira: Character) -> None:
    """A new generation is pending, uses the character's prompt unless given one."""
    first = platform.generations.enqueue(ada.id, mira.id)
    second = platform.generations.create(user_id=ada.id, character_id=mira.id, prompt="at dawn")
    assert (first.status, first.prompt, first.attempts) == ("pending", "a fox spirit", 0)
    assert second.prompt == "at dawn"
    assert platform.generations.counts_by_status() == {
        "pending": 2,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
    }


def test_only_own_or_public_live_characters_can_be_generated(
    platform: Store, ada: User, bob: User, mira: Character
) -> None:
    """Another user's private or deleted character is NotFound; a public one may be used."""
    with pytest.raises(NotFound):
        platform.generations.enqueue(bob.id, mira.id)
    platform.characters.publish(mira.id)
    assert platform.generations.enqueue(bob.id, mira.id).user_id == bob.id
    platform.characters.delete(mira.id)
    with pytest.raises(NotFound):
        platform.generations.enqueue(ada.id, mira.id)


def test_the_queue_runs_oldest_first_through_its_states(
    platform: Store, ada: User, mira: Character
) -> None:
    """claim_next takes the oldest pending job; complete, fail and retry move it on."""
    jobs = [platform.generations.enqueue(ada.id, mira.id) for _ in range(3)]
    first = platform.generations.claim_next("w1")
    second = platform.generations.claim_next("w2")
    assert first is not None
    assert second is not None
    assert [first.id, second.id] == [jobs[0].id, jobs[1].id]
    assert (first.status, first.worker, first.attempts) == ("running", "w1", 1)
    assert first.started_at is not None
    done = platform.generations.complete(first.id, "https://cdn.example.com/1.png")
    assert (done.status, done.result_url) == ("succeeded", "https://cdn.example.com/1.png")
    assert done.finished_at is not None
    failed = platform.generations.fail(second.id, "timeout")
    assert (failed.status, failed.error) == ("failed", "timeout")
    retried = platform.generations.retry(second.id)
    assert (retried.status, retried.error, retried.worker) == ("pending", None, None)
    again = platform.generations.claim_next("w3")
    assert again is not None
    assert (again.id, again.attempts) == (second.id, 2)  # retried jobs keep their place
    assert platform.generations.claim_next("w4").id == jobs[2].id
    assert platform.generations.claim_next("w5") is None


def test_moves_out_of_order_are_refused(platform: Store, ada: User, mira: Character) -> None:
    """Finishing a pending or finished job, retrying a running one, or setting status
    with update() is refused; an unknown id is NotFound."""
    job = platform.generations.enqueue(ada.id, mira.id)
    with pytest.raises(InvalidTransition):
        platform.generations.complete(job.id, "https://x.example/1.png")
    with pytest.raises(ValidationError, match="status"):
        platform.generations.update(job.id, status="succeeded")
    running = platform.generations.claim_next("w")
    assert running is not None
    with pytest.raises(InvalidTransition):
        platform.generations.retry(running.id)
    platform.generations.complete(running.id, "https://x.example/1.png")
    with pytest.raises(InvalidTransition):
        platform.generations.fail(running.id, "too late")
    with pytest.raises(NotFound):
        platform.generations.complete("00000000-0000-4000-8000-000000000000", "https://x/y")


def test_concurrent_workers_claim_each_job_exactly_once(
    platform: Store, ada: User, mira: Character
) -> None:
    """Workers racing on the queue never claim the same generation twice, and drain it."""
    platform.users.update(ada.id, subscription_tier="pro")
    jobs = [platform.generations.enqueue(ada.id, mira.id) for _ in range(24)]
    claimed: list[Generation] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            while (job := platform.generations.claim_next(name)) is not None:
                with lock:
                    claimed.append(job)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sorted(j.id for j in claimed) == sorted(j.id for j in jobs)
    assert platform.generations.counts_by_status()["running"] == len(jobs)
