"""`clonestore doctor` on a PostgreSQL primary with two real hot standbys reports each
replica's lag (the servers come from the session's replicated pair)."""

from __future__ import annotations

import json

from .conftest import _subprocess


def test_doctor_reports_each_replicas_lag(replicated_url: str) -> None:
    """Each standby is a replica check with its lag in seconds and bytes; all pass."""
    migrated = _subprocess("migrate", "--url", replicated_url)
    assert migrated.exit_code == 0, migrated.stderr
    done = _subprocess("doctor", "--url", replicated_url, "--json")
    assert done.exit_code == 0, done.stderr + done.stdout
    replicas = [c for c in json.loads(done.stdout)["checks"] if c["name"] == "replica"]
    assert len(replicas) == 2
    for check in replicas:
        assert check["status"] == "ok"
        assert "lag_seconds" in check["detail"]
        assert "lag_bytes" in check["detail"]
