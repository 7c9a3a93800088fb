"""The audit log tampered with at the engine (SQLite and PostgreSQL): dropped tables and a
malformed stored value fail verification cleanly (issue 21), and a database holding
0001's single chain migrates into the owners' chains, verified across the boundary
(issue 27)."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from clonestore_audit import GENESIS, PERSONAL, SYSTEM
from clonestore_audit._chain import new_salt, personal_digest, row_hash
from clonestore_peewee.sql._backend import NONE

import clonestore
from clonestore.cli import cli
from clonestore.query import And, Cond

from ..tampering import unguarded
from ..test_migrations import _fresh_postgres
from .conftest import pg_execute

OLD = importlib.import_module("clonestore_audit.migrations.0001_initial")
LOG = "audit_entries"


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """An empty database of its own on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/audit.db"
    else:
        yield from _fresh_postgres(request.getfixturevalue("postgres_server_url"))


def _verify_cli(url: str, *args: str) -> Any:
    """`clonestore audit verify` in process; an exception escaping it fails the test."""
    return CliRunner().invoke(cli, ["audit", "verify", "--url", url, *args],
                              catch_exceptions=False)  # fmt: skip


def _force(store: clonestore.Store, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run SQL on the audit rows past the append-only guard."""
    if store.url.startswith("postgresql"):
        pg_execute(store.url, (sql, params), replica=True)
    else:
        with unguarded(store, LOG):
            store.backend.execute(sql.replace("%s", "?"), params, NONE)  # type: ignore[attr-defined]


def test_dropped_audit_tables_fail_verification_and_are_not_recreated(url):
    """DROP TABLE of the audit log: verify() and `audit verify` fail (exit 1) naming the
    missing table, and the command does not create it again."""
    with clonestore.open(url, plugins=["audit"]) as store:
        store.audit.log("user.login", subject_id="ada")
        store.backend.drop_spec_tables([store.tables[LOG]])  # type: ignore[attr-defined]
        report = store.audit.verify()
        assert not report.ok
        assert "audit_entries" in report.reason
        assert "missing" in report.reason
    done = _verify_cli(url)
    assert done.exit_code == 1
    assert "missing" in done.stderr
    with clonestore.open(url, plugins=["audit"], create_tables=False, check_tables=False) as store:
        assert store.backend.missing_tables([store.tables[LOG]]) == [LOG]  # type: ignore[attr-defined]


def test_a_malformed_stored_value_is_a_bad_row_not_a_traceback(url):
    """A stored value verify cannot use (SQLite: text that is not JSON in a JSON column;
    PostgreSQL: JSON nested past what can be decoded) is reported as a bad row by verify()
    and `audit verify`."""
    with clonestore.open(url, plugins=["audit"]) as store:
        for _ in range(3):
            store.audit.log("user.login", subject_id="ada")
        if url.startswith("sqlite"):
            _force(store, f"UPDATE {LOG} SET details = '{{not json', stamp = 'x' WHERE seq = 2")
        else:
            nested = "[" * 3000 + "]" * 3000
            _force(store, f"UPDATE {LOG} SET details = %s::jsonb WHERE seq = 2", (nested,))
        report = store.audit.verify()
        assert (report.ok, report.owner) == (False, "ada")
        assert "malformed" in report.reason
    done = _verify_cli(url)
    assert done.exit_code == 1
    assert "malformed" in done.stderr


def _legacy_rows(n: int) -> list[dict[str, Any]]:
    """Rows as 0001's single chain held them: seq 1..n from GENESIS, no owner."""
    rows: list[dict[str, Any]] = []
    previous = GENESIS
    for seq in range(1, n + 1):
        salt = new_salt()
        row: dict[str, Any] = {
            "id": str(uuid.uuid4()), "seq": seq,
            "created_at": datetime(2029, 1, 1, 12, seq, tzinfo=UTC),
            "action": "user.login", "resource_type": None, "resource_id": None,
            "result": "success", "error_type": None, "request_id": None, "info": None,
            "actor_id": f"user-{seq % 2}", "subject_id": None, "ip_address": "203.0.113.9",
            "user_agent": None, "changes": None, "details": {"seq": seq},
            "error_message": None, "salt": salt, "redacted_at": None, "prev_hash": previous,
        }  # fmt: skip
        row["personal_digest"] = personal_digest(salt, row)
        row["hash"] = previous = row_hash(row)
        rows.append(row)
    return rows


def _database_at_0001(url: str) -> list[dict[str, Any]]:
    """A database whose audit tables are 0001's, guarded, holding a single chain of 5 rows
    (one redacted, as 0001's erase_user did) and its head."""
    with clonestore.open(url, plugins=["audit"], create_tables=False, check_tables=False) as store:
        store.migrate(to="audit/0001_initial")
        backend: Any = store.backend
        backend.apply_table_options([OLD.LOG])
        rows = _legacy_rows(5)
        backend.insert_many(OLD.LOG, rows)
        backend.insert(OLD.HEAD, {"id": "6a7d2c44-1c2e-4a53-9c1f-2f0e6d5b8a01", "name": "chain",
                                  "seq": 5, "hash": rows[-1]["hash"]})  # fmt: skip
        erased = dict.fromkeys(PERSONAL)
        backend.update(OLD.LOG, Cond("seq", "eq", 4),
                       {**erased, "salt": None, "redacted_at": datetime.now(UTC)})  # fmt: skip
        assert backend.missing_tables([OLD.LOG, OLD.HEAD, OLD.ANCHORS]) == []
    return rows


def test_a_0001_chain_becomes_the_first_segment_of_the_system_chain(url):
    """A database written at audit/0001 migrates (on open) into the owners' chains: 0001's
    rows are the system chain's first segment, unchanged, its redacted row named by an
    audit.redact entry; new entries follow in the new design and verify() passes across
    the boundary."""
    legacy = _database_at_0001(url)
    with clonestore.open(url, plugins=["audit"]) as store:
        assert store.backend.missing_tables([OLD.LOG]) == ["audit_log"]  # type: ignore[attr-defined]
        system = store.backend.select(store.tables[LOG], Cond("owner", "eq", SYSTEM))
        by_seq = {row["seq"]: row for row in system}
        assert [by_seq[n]["hash"] for n in range(1, 6)] == [row["hash"] for row in legacy]
        assert by_seq[6]["action"] == "audit.redact"
        assert by_seq[6]["info"]["seqs"] == [[4, 4]]
        assert by_seq[6]["prev_hash"] == legacy[-1]["hash"]
        store.audit.log("system.start")
        user = store.users.create(email="ada@example.com", name="Ada")
        store.users.update(user.id, name="Ada L")
        report = store.audit.verify()
        assert (report.ok, report.checked, report.chains) == (True, 9, 2)
        assert store.audit.head(SYSTEM)[0] == 7
        assert store.audit.purge(older_than_days=365 * 100) == 0
        assert store.audit.verify(expect_head=store.audit.head()).ok


@pytest.mark.parametrize("tamper", ["changed", "removed"])
def test_tampering_across_the_segment_boundary_is_reported(url, tamper):
    """A 0001 row changed or removed after the migration breaks the system chain where the
    old segment meets the new one."""
    _database_at_0001(url)
    with clonestore.open(url, plugins=["audit"]) as store:
        store.audit.log("system.start")
        assert store.audit.verify().ok
        if tamper == "changed":
            _force(store, f"UPDATE {LOG} SET action = 'forged' WHERE owner = %s AND seq = 5",
                   (SYSTEM,))  # fmt: skip
        else:
            _force(store, f"DELETE FROM {LOG} WHERE owner = %s AND seq = 5", (SYSTEM,))
        report = store.audit.verify()
        assert (report.ok, report.owner) == (False, SYSTEM)
        assert report.first_bad_seq == (5 if tamper == "changed" else 6)


def test_0001_anchors_survive_the_migration(url):
    """A 0001 chain purged before the migration (anchor and audit.purge entry) still
    verifies after it: the anchor moves into the system chain's purge anchors."""
    legacy = _database_at_0001(url)
    with clonestore.open(url, plugins=["audit"], create_tables=False, check_tables=False) as store:
        backend: Any = store.backend
        backend.insert(OLD.ANCHORS, {"id": str(uuid.uuid4()), "seq": 2, "hash": legacy[1]["hash"],
                                     "removed": 2, "purged_at": datetime.now(UTC)})  # fmt: skip
        backend.purge(OLD.LOG, 2)
        salt = new_salt()
        row: dict[str, Any] = {
            **legacy[-1], "id": str(uuid.uuid4()), "seq": 6, "action": "audit.purge",
            "info": {"anchor_seq": 2, "anchor_hash": legacy[1]["hash"]}, "actor_id": None,
            "ip_address": None, "details": None, "salt": salt, "prev_hash": legacy[-1]["hash"],
        }  # fmt: skip
        row["personal_digest"] = personal_digest(salt, row)
        row["hash"] = row_hash(row)
        backend.insert(OLD.LOG, row)
        backend.update(OLD.HEAD, Cond("name", "eq", "chain"), {"seq": 6, "hash": row["hash"]})
    with clonestore.open(url, plugins=["audit"]) as store:
        report = store.audit.verify()
        assert (report.ok, report.checked) == (True, 5)  # rows 3..6 and the redact entry
        assert store.backend.select(
            store.tables["audit_purges"], And((Cond("owner", "eq", SYSTEM), Cond("seq", "eq", 2)))
        )
