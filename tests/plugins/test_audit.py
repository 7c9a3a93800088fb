"""The audit plugin records every write through the gateway, and explicit events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from clonestore_audit import MASKED, AuditPlugin

from clonestore import AlreadyExists, ValidationError

from .conftest import rolled_back


@pytest.fixture
def store(store_factory, clock):
    return store_factory(plugins=["audit"], clock=clock)


def _entries(store, **filters):
    return list(reversed(store.audit.find(**filters)))  # oldest first


def test_a_create_is_recorded_with_its_context(store, clock):
    """create is recorded: action, resource, result, the new values and store.context fields."""
    with store.context(
        actor_id="admin-1", ip_address="203.0.113.9", user_agent="app/1.2", request_id="r-1"
    ):
        user = store.users.create(email="ada@example.com", name="Ada")
    (entry,) = _entries(store)
    assert (entry.action, entry.resource_type, entry.resource_id) == (
        "user.create",
        "users",
        user.id,
    )
    assert (entry.result, entry.seq, entry.created_at) == ("success", 1, clock.now)
    assert (entry.actor_id, entry.ip_address, entry.user_agent, entry.request_id) == (
        "admin-1",
        "203.0.113.9",
        "app/1.2",
        "r-1",
    )
    assert entry.subject_id == user.id
    after = entry.changes["after"]
    assert (after["email"], after["name"], after["version"]) == ("ada@example.com", "Ada", 1)
    assert "email_key" not in after  # derived columns are not recorded


def test_an_update_records_changed_fields_before_and_after(store):
    """update records only the changed fields, before and after."""
    user = store.users.create(email="ada@example.com", name="Ada")
    store.users.update(user.id, name="Ada L", settings={"lang": "en"})
    entry = _entries(store, action="user.update")[0]
    assert entry.changes == {
        "before": {"name": "Ada", "settings": {}},
        "after": {"name": "Ada L", "settings": {"lang": "en"}},
    }


def test_domain_operations_are_recorded_by_name(store, clock):
    """Domain writes carry their own action names (document.update_status, turn.add_turn)."""
    user = store.users.create(email="ada@example.com", name="Ada")
    doc = store.documents.create(user_id=user.id, filename="cv.pdf", uploaded_at=clock.now)
    store.documents.update_status(doc.id, "processing")
    session = store.sessions.create(user_id=user.id, started_at=clock.now)
    store.sessions.add_turn(session.id, user_transcript="secret words", llm_latency_ms=5)
    status = _entries(store, action="document.update_status")[0]
    assert status.changes == {"before": {"status": "pending"}, "after": {"status": "processing"}}
    assert status.subject_id == user.id
    assert _entries(store, action="session.add_turn")[0].changes["after"]["total_turns"] == 1
    turn = _entries(store, action="turn.add_turn")[0]
    assert turn.changes["after"]["user_transcript"] == MASKED


def test_bulk_writes_record_one_entry_per_row(store):
    """create_many and update_many record every row they touch."""
    users = store.users.create_many(
        [{"email": f"u{i}@example.com", "name": f"U{i}"} for i in range(3)]
    )
    assert store.users.update_many({"name__startswith": "U"}, subscription_tier="pro") == 3
    created = _entries(store, action="user.create_many")
    assert [e.resource_id for e in created] == [u.id for u in users]
    updated = _entries(store, action="user.update_many")
    assert sorted(e.resource_id for e in updated) == sorted(u.id for u in users)
    assert all(e.changes["after"] == {"subscription_tier": "pro"} for e in updated)


def test_large_bulk_writes_are_recorded_and_fail_together(store):
    """A create_many large enough for COPY (PostgreSQL's bulk_copy) records every row, and a
    batch that fails on a taken email leaves no rows and no success entries."""
    rows = [{"email": f"bulk{i}@example.com", "name": "B"} for i in range(150)]
    users = store.users.create_many(rows)
    created = _entries(store, action="user.create_many", limit=1000)
    assert sorted(e.resource_id for e in created) == sorted(u.id for u in users)
    clash = [{"email": f"more{i}@example.com", "name": "M"} for i in range(150)]
    with pytest.raises(AlreadyExists):
        store.users.create_many([*clash, {"email": "BULK7@example.com", "name": "again"}])
    assert store.users.count() == 150
    after = _entries(store, action="user.create_many", limit=1000)
    assert [e.id for e in after if e.result == "success"] == [e.id for e in created]


def test_cascades_and_deletes_are_recorded(store, clock):
    """A user's soft delete records the cascade; a hard delete records the removed row."""
    user = store.users.create(email="ada@example.com", name="Ada")
    store.memories.add(user.id, "likes tea", [0.1, 0.2])
    store.users.delete(user.id)
    assert _entries(store, action="memory.delete")[0].changes["after"]["deleted_at"] == (
        clock.now.isoformat()
    )
    doc = store.documents.create(user_id=_other(store).id, filename="x", uploaded_at=clock.now)
    store.documents.hard_delete(doc.id)
    gone = _entries(store, action="document.hard_delete")[0]
    assert gone.changes["before"]["filename"] == "x"


def _other(store):
    return store.users.create(email="bob@example.com", name="Bob")


def test_sensitive_fields_are_masked_as_configured(store_factory):
    """Masked fields are recorded as '***'; the patterns are configurable."""
    store = store_factory(plugins=[AuditPlugin(mask=("email", "*ings"))])
    user = store.users.create(email="ada@example.com", name="Ada", settings={"k": 1})
    after = _entries(store)[0].changes["after"]
    assert (after["email"], after["settings"], after["name"]) == (MASKED, MASKED, "Ada")
    store.users.update(user.id, email="ada@example.org")
    assert _entries(store, action="user.update")[0].changes == {
        "before": {"email": MASKED},
        "after": {"email": MASKED},
    }


def test_a_failed_write_is_recorded_once(store):
    """A write the backend refuses is recorded as one failure, with the error."""
    store.users.create(email="ada@example.com", name="Ada")
    with pytest.raises(AlreadyExists):
        store.users.create(email="ADA@example.com", name="Again")
    (failure,) = _entries(store, result="failure")
    assert (failure.action, failure.error_type) == ("user.create", "AlreadyExists")
    assert failure.changes["attempted"]["name"] == "Again"


def test_a_rolled_back_write_leaves_no_success_row(store):
    """Success rows are written in the write's transaction: a rollback removes them too."""
    user = store.users.create(email="ada@example.com", name="Ada")
    with rolled_back(store):
        store.users.update(user.id, name="never")
    assert [e.action for e in _entries(store)] == ["user.create"]
    assert store.audit.verify().ok


def test_a_failure_inside_a_rolled_back_transaction_survives(store):
    """A failed write inside a transaction that then rolls back is still recorded, once."""
    user = store.users.create(email="ada@example.com", name="Ada")

    def attempt():
        with store.transaction():
            store.users.update(user.id, name="gone")
            store.users.create(email="ada@example.com", name="Dup")

    with pytest.raises(AlreadyExists):
        attempt()
    assert [(e.action, e.result) for e in _entries(store)] == [
        ("user.create", "success"),
        ("user.create", "failure"),
    ]
    assert store.audit.verify().ok


def test_a_caught_failure_inside_a_committed_transaction_is_recorded(store):
    """A failure the caller caught is recorded once the transaction commits, after its writes."""
    user = store.users.create(email="ada@example.com", name="Ada")
    with store.transaction():
        with pytest.raises(AlreadyExists):
            store.users.create(email="ada@example.com", name="Dup")
        store.users.update(user.id, name="Ada L")
        assert store.audit.find(result="failure") == []  # not before the transaction ends
    assert [(e.action, e.result) for e in _entries(store)] == [
        ("user.create", "success"),
        ("user.update", "success"),
        ("user.create", "failure"),
    ]
    assert store.audit.verify().ok


def test_noop_writes_are_recorded_as_noop(store):
    """An update that matched no row (a stale expected_version) is recorded as noop."""
    user = store.users.create(email="ada@example.com", name="Ada")
    with pytest.raises(Exception, match="version"):
        store.users.update(user.id, expected_version=7, name="x")
    entry = _entries(store, action="user.update")[0]
    assert (entry.result, entry.resource_id) == ("noop", user.id)


def test_log_records_explicit_events(store):
    """log() records events such as user.login, with context defaults and JSON details."""
    with store.context(actor_id="u-1", ip_address="198.51.100.7", request_id="r-9"):
        entry = store.audit.log("user.login", details={"method": "password", "ok": True})
    assert (entry.action, entry.actor_id, entry.ip_address, entry.request_id) == (
        "user.login",
        "u-1",
        "198.51.100.7",
        "r-9",
    )
    failed = store.audit.log(
        "document.upload", result="failure", error="too big", actor_id="u-2", resource_id="doc-1"
    )
    assert (failed.result, failed.error_message, failed.resource_id) == (
        "failure",
        "too big",
        "doc-1",
    )
    with pytest.raises(ValidationError):
        store.audit.log("x", details={"n": float("nan")})
    with pytest.raises(ValidationError):
        store.audit.log("x", result="maybe")
    assert store.audit.verify().ok


def test_find_filters_by_action_time_and_limit(store, clock):
    """find(action=..., since=..., until=..., limit=...) returns matches newest first."""
    for i in range(5):
        store.audit.log("user.login" if i % 2 == 0 else "document.upload", details={"i": i})
        clock.advance(60)
    logins = store.audit.find(action="user.login")
    assert [e.details["i"] for e in logins] == [4, 2, 0]
    assert [e.details["i"] for e in store.audit.find(action="user.*", limit=2)] == [4, 2]
    start = clock.now - timedelta(minutes=4)
    window = store.audit.find(since=start, until=start + timedelta(minutes=2))
    assert [e.details["i"] for e in window] == [2, 1]
    assert len(store.audit.find(limit=100, offset=3)) == 2


def test_find_by_user_and_user_statistics(store, clock):
    """find_by_user returns what a user did or underwent; user_statistics sums their actions."""
    ada = store.users.create(email="ada@example.com", name="Ada")
    with store.context(actor_id=ada.id):
        store.users.update(ada.id, name="Ada L")
        store.audit.log("user.login")
        store.audit.log("user.login", result="failure")
        clock.advance(3600)
        store.audit.log("user.login")
    assert len(store.audit.find_by_user(ada.id)) == 5
    stats = store.audit.user_statistics(ada.id, days=30)
    assert (stats.total, stats.failures) == (4, 1)
    assert stats.by_action == {"user.login": 3, "user.update": 1}
    assert stats.last_at - stats.first_at == timedelta(hours=1)
    clock.advance(86400 * 31)
    assert store.audit.user_statistics(ada.id, days=30).total == 0


def test_export_lists_the_users_entries(store):
    """export_user includes the audit entries by or about the user."""
    ada = store.users.create(email="ada@example.com", name="Ada")
    store.audit.log("user.login", actor_id=ada.id)
    exported = store.export_user(ada.id)["audit"]
    assert [e["action"] for e in exported] == ["user.create", "user.login"]
