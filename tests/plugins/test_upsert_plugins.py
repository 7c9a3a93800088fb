"""The plugins see an upsert as a write: the audit logs it, the cache drops what it replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

import clonestore


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_upsert_is_audited_and_invalidates_the_cache(scheme: str, tmp_path: Path) -> None:
    """upsert is audited as <noun>.upsert (created and replaced) and a cached read sees the
    replacement right after it."""
    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path / 'u.db'}"
    with clonestore.open(url, plugins=["cache", "audit"]) as store:
        store.users.upsert("u1", email="ada@example.com", name="Ada")
        assert store.users.get("u1").name == "Ada"  # now cached
        store.users.upsert("u1", email="ada@example.com", name="Grace")
        assert store.users.get("u1").name == "Grace"
        logged = store.audit.find(action="user.upsert")
        assert len(logged) == 2
        assert {entry.result for entry in logged} == {"success"}
