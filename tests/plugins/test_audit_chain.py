"""The audit chains (one per owner): verify() finds the first changed, removed, reordered
or falsely redacted row of a chain on every backend; purge and erasure keep every chain
verifiable; global anchors and an expected head catch a cut or rewritten log. The log is
append-only (by trigger on SQL engines), so tampering here first lifts the guard, as
someone who may drop triggers could, or uses the engine's own purge unlock."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from clonestore_audit import GENESIS, PERSONAL, SYSTEM
from clonestore_audit._chain import genesis

import clonestore
from clonestore import BackendError, ClonestoreError
from clonestore.query import TRUE, And, Cond
from clonestore.testing.contract._builders import race
from clonestore.testing.wiping import empty_table

from ..tampering import unguarded
from .conftest import is_postgres, pg_execute

LOG = "audit_entries"
HEADS = "audit_heads"


@pytest.fixture
def store(store_factory, clock):
    return store_factory(plugins=["audit"], clock=clock)


def _log(store, n: int, owner: str = "ada", **fields: Any) -> None:
    for i in range(n):
        store.audit.log("user.login", subject_id=owner, details={"i": i}, **fields)


def _where(owner: str, seq: int) -> Any:
    return And((Cond("owner", "eq", owner), Cond("seq", "eq", seq)))


def force_update(store, owner: str, seq: int, /, **changes: Any) -> None:
    """Change an audit row behind the plugin's back (as someone with database access could)."""
    if is_postgres(store.url):
        sets = ", ".join(f"{name} = %s" for name in changes)
        pg_execute(
            store.url,
            (f"UPDATE {LOG} SET {sets} WHERE owner = %s AND seq = %s",
             (*changes.values(), owner, seq)),
            replica=True,
        )  # fmt: skip
    else:
        with unguarded(store, LOG):
            store.backend.update(store.tables[LOG], _where(owner, seq), changes)


def force_delete(store, owner: str, seq: int) -> None:
    if is_postgres(store.url):
        pg_execute(
            store.url,
            (f"DELETE FROM {LOG} WHERE owner = %s AND seq = %s", (owner, seq)),
            replica=True,
        )
    else:
        with unguarded(store, LOG):
            store.backend.delete(store.tables[LOG], _where(owner, seq))


def _chain(store, owner: str) -> list[Any]:
    return sorted((e for e in store.audit.find(limit=10_000) if e.owner == owner),
                  key=lambda e: e.seq)  # fmt: skip


def test_an_untouched_chain_verifies(store):
    """A chain written by writes and events verifies, each row linked to its owner's previous."""
    user = store.users.create(email="ada@example.com", name="Ada")
    store.users.update(user.id, name="Ada L")
    _log(store, 3, owner=user.id)
    report = store.audit.verify()
    assert (report.ok, report.checked, report.first_bad_seq) == (True, 5, None)
    assert store.audit.head(user.id) == (5, store.audit.find(limit=1)[0].hash)
    assert [e.seq for e in _chain(store, user.id)] == [1, 2, 3, 4, 5]


def test_an_empty_log_verifies(store):
    """No rows: the log is trivially intact and its head is the genesis hash."""
    assert store.audit.verify().ok
    assert store.audit.head() == (0, GENESIS)


def test_each_owner_has_a_chain_of_its_own(store):
    """Interleaved writes of two users form two chains, each from seq 1 and its owner's
    genesis; verify(owner) checks that owner's rows alone."""
    for _ in range(3):
        _log(store, 1, owner="ada")
        _log(store, 2, owner="bob")
    store.audit.log("user.login", actor_id="carol")  # no subject: the actor's chain
    store.audit.log("system.start")  # neither: the system's
    ada, bob = _chain(store, "ada"), _chain(store, "bob")
    assert [e.seq for e in ada] == [1, 2, 3]
    assert [e.seq for e in bob] == [1, 2, 3, 4, 5, 6]
    assert [e.owner for e in store.audit.find(action="system.start")] == [SYSTEM]
    assert [e.seq for e in _chain(store, "carol")] == [1]
    first = store.backend.select(store.tables[LOG], _where("bob", 1))[0]
    assert first["prev_hash"] == genesis("bob") != genesis("ada")
    alone = store.audit.verify("bob")
    assert (alone.ok, alone.checked, alone.chains) == (True, 6, 1)
    everything = store.audit.verify()
    assert (everything.ok, everything.checked, everything.chains) == (True, 11, 4)


def test_a_changed_row_is_reported(store):
    """Changing a chained field of row 3 is reported at row 3 of that chain."""
    _log(store, 5)
    _log(store, 2, owner="bob")
    force_update(store, "ada", 3, action="user.logout")
    report = store.audit.verify()
    assert (report.ok, report.owner, report.first_bad_seq) == (False, "ada", 3)
    assert "changed" in report.reason
    assert store.audit.verify("bob").ok
    assert not store.audit.verify("ada").ok


def test_a_changed_personal_field_is_reported(store):
    """Changing a personal field (through its salted digest) is reported at that row."""
    _log(store, 4, ip_address="203.0.113.9")
    force_update(store, "ada", 2, ip_address="198.51.100.1")
    report = store.audit.verify()
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert "personal" in report.reason


def test_a_removed_row_is_reported(store):
    """Removing row 3 is reported at row 4, where the chain breaks."""
    _log(store, 5)
    force_delete(store, "ada", 3)
    report = store.audit.verify()
    assert (report.ok, report.first_bad_seq) == (False, 4)
    assert "3..3" in report.reason


def test_removed_last_rows_are_reported(store):
    """Removing the newest rows of a chain is caught by the chain's head."""
    _log(store, 5)
    force_delete(store, "ada", 5)
    force_delete(store, "ada", 4)
    report = store.audit.verify()
    assert not report.ok
    assert "4..5" in report.reason


def test_a_removed_head_row_is_reported(store):
    """A chain whose head row is gone (to hide a cut tail) does not verify."""
    _log(store, 3)
    force_delete(store, "ada", 3)
    store.backend.delete(store.tables[HEADS], Cond("name", "eq", "ada"))
    report = store.audit.verify()
    assert not report.ok
    assert "no head" in report.reason


def test_a_row_moved_to_another_chain_is_reported(store):
    """Moving a row to another owner's chain breaks both chains."""
    _log(store, 3, owner="ada")
    _log(store, 2, owner="bob")
    force_update(store, "bob", 2, owner="ada", seq=4)
    report = store.audit.verify()
    assert not report.ok


def test_reordered_rows_are_reported(store):
    """Swapping two rows' places in the chain is reported at the first of them."""
    _log(store, 5)
    force_update(store, "ada", 2, seq=-2)
    force_update(store, "ada", 3, seq=2)
    force_update(store, "ada", -2, seq=3)
    report = store.audit.verify()
    assert (report.ok, report.first_bad_seq) == (False, 2)


def test_a_forged_redaction_is_reported(store):
    """Dropping a row's salt while keeping its personal fields does not pass as a redaction."""
    _log(store, 3, actor_id="someone")
    force_update(store, "ada", 2, salt=None)
    report = store.audit.verify()
    assert (report.ok, report.first_bad_seq) == (False, 2)


def test_nulled_personal_fields_of_a_user_never_erased_are_reported(store):
    """Nulling a row's personal columns and salt, as an erasure would but without one,
    is reported: a redacted row must be named by an audit.redact entry (issue 21)."""
    _log(store, 3, actor_id="someone", ip_address="203.0.113.9")
    force_update(store, "ada", 2, salt=None, **dict.fromkeys(PERSONAL))
    report = store.audit.verify()
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert "audit.redact" in report.reason


def test_erasure_redacts_personal_fields_and_the_chain_still_verifies(store):
    """erase_user erases personal fields of rows by or about the user, names them in an
    audit.redact entry of each chain it touched; verify() still passes."""
    ada = store.users.create(email="ada@example.com", name="Ada")
    bob = store.users.create(email="bob@example.com", name="Bob")
    with store.context(actor_id=ada.id, ip_address="203.0.113.9", user_agent="app"):
        store.users.update(ada.id, name="Ada L")
        store.audit.log("user.login", details={"device": "phone"})
        store.users.update(bob.id, name="Bob by Ada")  # Ada acting in Bob's chain
    with store.context(actor_id=bob.id, ip_address="198.51.100.7"):
        store.users.update(bob.id, name="Bob B")
    store.erase_user(ada.id)
    about_ada = [e for e in _chain(store, ada.id) if e.action != "audit.redact"][:3]
    assert all(e.redacted for e in about_ada)
    for entry in about_ada:
        assert all(getattr(entry, name) is None for name in PERSONAL)
    by_ada_in_bobs = [e for e in _chain(store, bob.id) if e.changes is None and e.redacted]
    assert len(by_ada_in_bobs) == 1
    assert [e.ip_address for e in store.audit.find(actor_id=bob.id)] == ["198.51.100.7"]
    redactions = store.audit.find(action="audit.redact")
    assert {e.owner for e in redactions} == {ada.id, bob.id}
    bobs = next(e for e in redactions if e.owner == bob.id)
    assert bobs.info["seqs"] == [[by_ada_in_bobs[0].seq, by_ada_in_bobs[0].seq]]
    erased = store.audit.find(action="user.erase_user")[0]
    assert (erased.resource_id, erased.changes, erased.subject_id, erased.owner) == (
        ada.id, None, None, ada.id,
    )  # fmt: skip
    assert store.audit.verify().ok
    assert store.audit.find_by_user(ada.id) == []


def test_purge_keeps_every_chain_verifiable(store, clock):
    """purge() cuts each chain behind an anchor confirmed by an audit.purge entry in that
    chain; verify() passes, and again after more."""
    _log(store, 5)
    _log(store, 2, owner="bob")
    clock.advance(86400 * 100)
    _log(store, 2)
    assert store.audit.purge(older_than_days=90) == 7
    assert [e.seq for e in _chain(store, "ada")] == [6, 7, 8]
    assert [e.seq for e in _chain(store, "bob")] == [3]
    purge_entry = _chain(store, "ada")[-1]
    assert purge_entry.action == "audit.purge"
    assert purge_entry.info["anchor_seq"] == 5
    assert store.audit.verify().ok
    assert store.audit.purge(older_than_days=90) == 0
    clock.advance(86400 * 100)
    _log(store, 1)
    assert store.audit.purge(older_than_days=1) == 4
    assert store.audit.verify().ok
    clock.advance(1)
    assert store.audit.purge(older_than_days=0) == 3  # everything, down to the purge entries
    assert store.audit.verify().ok
    assert {e.action for e in store.audit.find()} == {"audit.purge"}


def test_a_tampered_anchor_is_reported(store, clock):
    """An anchor not confirmed by an audit.purge entry does not excuse missing rows."""
    _log(store, 4)
    clock.advance(86400 * 100)
    _log(store, 1)
    store.audit.purge(older_than_days=90)
    store.backend.insert(
        store.tables["audit_purges"],
        {
            "id": str(uuid.uuid4()),
            "owner": "ada",
            "seq": 5,
            "hash": "f" * 64,
            "removed": 1,
            "purged_at": clock.now,
        },
    )
    force_delete(store, "ada", 5)
    report = store.audit.verify()
    assert not report.ok


def test_purge_refuses_to_run_inside_a_transaction(store):
    """purge() runs in its own transaction."""
    with store.transaction(), pytest.raises(ClonestoreError, match="own transaction"):
        store.audit.purge()


def test_the_global_anchor_catches_a_consistently_rewritten_chain(store):
    """A chain's tail rewritten with valid hashes (and its head row to match) verifies as a
    chain, but not against the global anchor recorded before; without that anchor in the
    log, only the head kept outside (expect_head) catches it."""
    _log(store, 3)
    _log(store, 2, owner="bob")
    recorded = store.audit.head()
    assert store.audit.head() == recorded  # nothing moved: the same anchor
    _log(store, 1, owner="bob")
    # The attacker removes ada's row 3 and re-chains a forged one (hashes recomputed).
    force_delete(store, "ada", 3)
    kept = store.audit.find(subject_id="ada")[0].hash
    store.backend.update(store.tables[HEADS], Cond("name", "eq", "ada"), {"seq": 2, "hash": kept})
    store.audit._heads.clear()
    store.audit.log("user.logout", subject_id="ada")
    assert store.audit.verify("ada").ok  # the chain alone cannot tell
    report = store.audit.verify()
    assert not report.ok
    assert "recorded anchor" in report.reason
    # ... and removes the anchor from the system chain as well.
    seq = recorded[0]
    force_delete(store, SYSTEM, seq)
    store.backend.delete(store.tables[HEADS], Cond("name", "eq", SYSTEM))
    assert store.audit.verify().ok
    against = store.audit.verify(expect_head=recorded)
    assert not against.ok
    assert against.owner == SYSTEM


def test_an_expected_head_catches_a_log_emptied_through_the_purge_unlock(store):
    """The engine's purge unlock (SQLite: a clonestore_purging row; PostgreSQL: the purge
    function; MariaDB: its session variables) can empty the log, and the heads go with a
    plain DELETE: verify() has nothing left to check, verify(expect_head) fails."""
    _log(store, 3)
    _log(store, 2, owner="bob")
    recorded = store.audit.head()
    assert store.audit.verify(expect_head=recorded).ok
    empty_table(store.backend, store.tables[LOG])  # the engine's own unlock
    store.backend.delete(store.tables[HEADS], TRUE)
    assert store.audit.verify().ok  # nothing left to contradict
    report = store.audit.verify(expect_head=recorded)
    assert not report.ok
    assert f"..{recorded[0]}" in report.reason


def test_concurrent_appends_form_one_chain_per_owner(store_factory):
    """Threads appending through two stores of one database, to one owner and to their
    own, produce unbroken chains."""
    first = store_factory(plugins=["audit"])
    second = first if first.url == "memory://" else store_factory(plugins=["audit"])
    errors = []

    def work(store, owner):
        try:
            _log(store, 20, owner=owner)
        except Exception as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(s, owner))
        for s in (first, second)
        for owner in ("shared", "shared", f"own-{id(s)}-a", f"own-{id(s)}-b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    report = first.audit.verify()
    assert (report.ok, report.checked) == (True, 160)
    assert first.audit.head("shared")[0] == 80


def test_writers_starting_one_chain_at_once_all_append(store_factory):
    """Eight threads of two stores making the first entry of a new owner's chain at the
    same moment all append (PostgreSQL: the losers' head upsert met the winner's row on
    the key ON CONFLICT does not cover; it must not fail the write), round after round."""
    first = store_factory(plugins=["audit"])
    second = first if first.url == "memory://" else store_factory(plugins=["audit"])
    for round in range(30):
        owner = f"starting-{round}"
        errors = race(8, lambda i, owner=owner: _log((first, second)[i % 2], 1, owner=owner))
        assert errors == []
        assert first.audit.head(owner)[0] == 8
    assert first.audit.verify().ok


def test_postgres_trigger_refuses_changes_but_allows_purge_and_redaction(postgres_url):
    """On PostgreSQL, UPDATE, DELETE and TRUNCATE of audit rows are refused, except the
    purge function and updates that only erase personal fields."""
    store = clonestore.open(postgres_url, plugins=["audit"])
    try:
        for spec in store.tables.values():  # what earlier tests left (only purge may remove it)
            empty_table(store.backend, spec)
        assert store.audit.guarded
        _log(store, 3, owner="someone", ip_address="203.0.113.9")
        for statement in (
            f"UPDATE {LOG} SET action = 'x' WHERE seq = 1",
            f"UPDATE {LOG} SET ip_address = '1.1.1.1' WHERE seq = 1",
            f"DELETE FROM {LOG} WHERE seq = 1",
            f"TRUNCATE {LOG}",
        ):
            with pytest.raises(Exception, match="append-only"):
                pg_execute(postgres_url, statement)
        with pytest.raises(BackendError):
            store.backend.delete(store.tables[LOG], Cond("seq", "eq", 1))
        store.hook.clonestore_erase_user(store=store, user_id="someone")
        assert all(e.redacted for e in store.audit.find() if e.action == "user.login")
        assert store.audit.verify().ok
        assert store.audit.purge(older_than_days=0) == 4
        assert store.audit.verify().ok
    finally:
        store.close()


def test_postgres_purge_function_is_not_executable_by_public(postgres_url):
    """The purge function, the one way past the trigger, is not granted to PUBLIC: an
    ordinary role of the database cannot call it (issue 21)."""
    store = clonestore.open(postgres_url, plugins=["audit"])
    store.close()
    (rows,) = pg_execute(
        postgres_url,
        "SELECT proacl::text FROM pg_proc WHERE proname = 'clonestore_purge_audit_entries'",
    )
    (acl,) = rows
    assert acl[0] is not None  # NULL: the default, EXECUTE for PUBLIC
    assert not any(item.startswith("=") for item in acl[0].strip("{}").split(","))
