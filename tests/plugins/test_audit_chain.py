"""The audit chain: verify() finds the first changed, removed or reordered row on every
backend; purge and erasure keep it verifiable; the log is append-only (by trigger on SQL
engines), so tampering here first lifts the guard, as someone who may drop triggers could."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from clonestore_audit import GENESIS, PERSONAL

import clonestore
from clonestore import BackendError, ClonestoreError
from clonestore.spi import Cond
from clonestore.testing.wiping import empty_table

from ..tampering import unguarded
from .conftest import is_postgres, pg_execute


@pytest.fixture
def store(store_factory, clock):
    return store_factory(plugins=["audit"], clock=clock)


def _log(store, n: int, **fields: Any) -> None:
    for i in range(n):
        store.audit.log("user.login", details={"i": i}, **fields)


def force_update(store, seq: int, /, **changes: Any) -> None:
    """Change an audit row behind the plugin's back (as someone with database access could)."""
    if is_postgres(store.url):
        sets = ", ".join(f"{name} = %s" for name in changes)
        pg_execute(
            store.url,
            (f"UPDATE audit_log SET {sets} WHERE seq = %s", (*changes.values(), seq)),
            replica=True,
        )
    else:
        with unguarded(store, "audit_log"):
            store.backend.update(store.tables["audit_log"], Cond("seq", "eq", seq), changes)


def force_delete(store, seq: int) -> None:
    if is_postgres(store.url):
        pg_execute(store.url, ("DELETE FROM audit_log WHERE seq = %s", (seq,)), replica=True)
    else:
        with unguarded(store, "audit_log"):
            store.backend.delete(store.tables["audit_log"], Cond("seq", "eq", seq))


def test_an_untouched_chain_verifies(store):
    """A chain written by writes and events verifies, each row linked to the previous one."""
    user = store.users.create(email="ada@example.com", name="Ada")
    store.users.update(user.id, name="Ada L")
    _log(store, 3)
    report = store.audit.verify()
    assert (report.ok, report.checked, report.first_bad_seq) == (True, 5, None)
    assert store.audit.head() == (5, store.audit.find(limit=1)[0].hash)
    assert store.audit.find()[-1].seq == 1


def test_an_empty_chain_verifies(store):
    """No rows: the chain is trivially intact and its head is the genesis hash."""
    assert store.audit.verify().ok
    assert store.audit.head() == (0, GENESIS)


def test_a_changed_row_is_reported(store):
    """Changing a chained field of row 3 is reported at row 3."""
    _log(store, 5)
    force_update(store, 3, action="user.logout")
    report = store.audit.verify()
    assert (report.ok, report.first_bad_seq, report.checked) == (False, 3, 2)
    assert "changed" in report.reason


def test_a_changed_personal_field_is_reported(store):
    """Changing a personal field (through its salted digest) is reported at that row."""
    _log(store, 4, ip_address="203.0.113.9")
    force_update(store, 2, ip_address="198.51.100.1")
    report = store.audit.verify()
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert "personal" in report.reason


def test_a_removed_row_is_reported(store):
    """Removing row 3 is reported at row 4, where the chain breaks."""
    _log(store, 5)
    force_delete(store, 3)
    report = store.audit.verify()
    assert (report.ok, report.first_bad_seq) == (False, 4)
    assert "3..3" in report.reason


def test_removed_last_rows_are_reported(store):
    """Removing the newest rows is caught by the chain's head."""
    _log(store, 5)
    force_delete(store, 5)
    force_delete(store, 4)
    report = store.audit.verify()
    assert not report.ok
    assert "4..5" in report.reason


def test_reordered_rows_are_reported(store):
    """Swapping two rows' places in the chain is reported at the first of them."""
    _log(store, 5)
    force_update(store, 2, seq=-2)
    force_update(store, 3, seq=2)
    force_update(store, -2, seq=3)
    report = store.audit.verify()
    assert (report.ok, report.first_bad_seq) == (False, 2)


def test_a_forged_redaction_is_reported(store):
    """Dropping a row's salt while keeping its personal fields does not pass as a redaction."""
    _log(store, 3, actor_id="someone")
    force_update(store, 2, salt=None)
    report = store.audit.verify()
    assert (report.ok, report.first_bad_seq) == (False, 2)


def test_erasure_redacts_personal_fields_and_the_chain_still_verifies(store):
    """erase_user erases personal fields of rows by or about the user; verify() still passes."""
    ada = store.users.create(email="ada@example.com", name="Ada")
    bob = store.users.create(email="bob@example.com", name="Bob")
    with store.context(actor_id=ada.id, ip_address="203.0.113.9", user_agent="app"):
        store.users.update(ada.id, name="Ada L")
        store.audit.log("user.login", details={"device": "phone"})
    with store.context(actor_id=bob.id, ip_address="198.51.100.7"):
        store.users.update(bob.id, name="Bob B")
    store.erase_user(ada.id)
    about_ada = [e for e in store.audit.find() if e.resource_id == ada.id and e.seq < 5]
    assert about_ada
    assert all(e.redacted for e in about_ada)
    for entry in about_ada:
        assert all(getattr(entry, name) is None for name in PERSONAL)
    bobs = store.audit.find(actor_id=bob.id)
    assert [e.ip_address for e in bobs] == ["198.51.100.7"]
    erased = store.audit.find(action="user.erase_user")[0]
    assert (erased.resource_id, erased.changes, erased.subject_id) == (ada.id, None, None)
    assert store.audit.verify().ok
    assert store.audit.find_by_user(ada.id) == []


def test_purge_keeps_the_chain_verifiable(store, clock):
    """purge() removes old rows behind an anchor; verify() passes, and again after more."""
    _log(store, 5)
    clock.advance(86400 * 100)
    _log(store, 2)
    assert store.audit.purge(older_than_days=90) == 5
    remaining = list(reversed(store.audit.find()))
    assert [e.seq for e in remaining] == [6, 7, 8]
    purge_entry = remaining[-1]
    assert purge_entry.action == "audit.purge"
    assert purge_entry.info["anchor_seq"] == 5
    assert store.audit.verify().ok
    assert store.audit.purge(older_than_days=90) == 0
    clock.advance(86400 * 100)
    _log(store, 1)
    assert store.audit.purge(older_than_days=1) == 3
    assert store.audit.verify().ok
    clock.advance(1)
    assert store.audit.purge(older_than_days=0) == 2  # everything, down to the purge entry
    assert store.audit.verify().ok
    assert [e.action for e in store.audit.find()] == ["audit.purge"]


def test_a_tampered_anchor_is_reported(store, clock):
    """An anchor not confirmed by an audit.purge entry does not excuse missing rows."""
    _log(store, 4)
    clock.advance(86400 * 100)
    _log(store, 1)
    store.audit.purge(older_than_days=90)
    store.backend.insert(
        store.tables["audit_anchors"],
        {
            "id": str(uuid.uuid4()),
            "seq": 5,
            "hash": "f" * 64,
            "removed": 1,
            "purged_at": clock.now,
        },
    )
    force_delete(store, 5)
    report = store.audit.verify()
    assert not report.ok


def test_purge_refuses_to_run_inside_a_transaction(store):
    """purge() runs in its own transaction."""
    with store.transaction(), pytest.raises(ClonestoreError, match="own transaction"):
        store.audit.purge()


def test_concurrent_appends_form_one_chain(store_factory):
    """Threads appending through two stores of one database produce one unbroken chain."""
    first = store_factory(plugins=["audit"])
    second = first if first.url == "memory://" else store_factory(plugins=["audit"])
    errors = []

    def work(store):
        try:
            _log(store, 25)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in (first, second) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    report = first.audit.verify()
    assert (report.ok, report.checked) == (True, 200)
    assert first.audit.head()[0] == 200


def test_postgres_trigger_refuses_changes_but_allows_purge_and_redaction(postgres_url):
    """On PostgreSQL, UPDATE, DELETE and TRUNCATE of audit rows are refused, except the
    purge function and updates that only erase personal fields."""
    store = clonestore.open(postgres_url, plugins=["audit"])
    try:
        for spec in store.tables.values():  # what earlier tests left (only purge may remove it)
            empty_table(store.backend, spec)
        assert store.audit.guarded
        _log(store, 3, actor_id="someone", ip_address="203.0.113.9")
        first = store.audit.find()[-1].seq
        for statement in (
            f"UPDATE audit_log SET action = 'x' WHERE seq = {first}",
            f"UPDATE audit_log SET ip_address = '1.1.1.1' WHERE seq = {first}",
            f"DELETE FROM audit_log WHERE seq = {first}",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(Exception, match="append-only"):
                pg_execute(postgres_url, statement)
        with pytest.raises(BackendError):
            store.backend.delete(store.tables["audit_log"], Cond("seq", "eq", first))
        store.hook.clonestore_erase_user(store=store, user_id="someone")
        assert all(e.redacted for e in store.audit.find())
        assert store.audit.verify().ok
        assert store.audit.purge(older_than_days=0) == 3
        assert store.audit.verify().ok
    finally:
        store.close()
