"""``clonestore maintain``: once, --json, --every, and a held lease."""

from __future__ import annotations

import json
from datetime import timedelta

import clonestore
from clonestore.maintenance import LEASES
from tests.cli.conftest import Run


def test_maintain_json_removes_what_is_due(
    run: Run, keeper: clonestore.Store, cli_url: str
) -> None:
    """`maintain --json` runs every enabled plugin's task and the soft-delete task
    with a retention, and prints what each removed."""
    past = keeper.clock() - timedelta(days=3)
    with clonestore.open(cli_url, plugins=["cache", "ratelimit"], clock=lambda: past) as old:
        old.cache.set_embedding("a" * 64, [0.1, 0.2], ttl=60)
        old.ratelimit.check_and_increment("user-1", "chat", 10, 3600)
        user = old.users.create(email="old@example.com", name="Old")
        old.users.delete(user.id)
    done = run("maintain", "--plugins", "cache,ratelimit,audit", "--retention",
               "soft_deleted=2", "--json")
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ran"]
    assert report["ok"]
    removed = {task["name"]: task["removed"] for task in report["tasks"]}
    assert removed == {"soft_deleted": 1, "turns": 0, "cache.expired": 1,
                       "ratelimit.windows": 1, "audit.purge": 0}
    assert keeper.users.get_or_none(user.id) is None


def test_maintain_every_runs_on_schedule(run: Run, keeper: clonestore.Store) -> None:
    """`maintain --every 0.2s --runs 3` runs three times, printing each run."""
    done = run("maintain", "--every", "0.2s", "--runs", "3", "--progress")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.count("maintenance done") == 3
    assert done.stdout.count("soft_deleted: skipped") == 3


def test_maintain_reports_a_held_lease(run: Run, keeper: clonestore.Store) -> None:
    """While another process holds the lease, `maintain` does nothing, says who holds
    it and exits 0."""
    now = keeper.clock()
    keeper.backend.insert(LEASES, {"id": "maintain", "holder": "elsewhere:42:abc",
                                   "acquired_at": now, "expires_at": now + timedelta(hours=1)})
    done = run("maintain")
    assert done.exit_code == 0, done.stderr
    assert "held by elsewhere:42:abc" in done.stdout
    held = json.loads(run("maintain", "--json").stdout)
    assert held == {"ran": False, "held_by": "elsewhere:42:abc", "tasks": [],
                    "seconds": held["seconds"], "ok": True}


def test_maintain_refuses_a_bad_interval(run: Run, keeper: clonestore.Store) -> None:
    """A malformed --every is a usage error (exit 2) naming the expected form."""
    done = run("maintain", "--every", "soon")
    assert done.exit_code == 2
    assert "30s, 15m, 1h or 1d" in done.stderr
