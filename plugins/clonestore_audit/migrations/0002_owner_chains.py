"""0002: one chain per owner (issue 27); 0001's single chain becomes the first
segment of the system chain.

New tables (``audit_entries``, ``audit_heads``, ``audit_purges``, specs frozen
here) replace 0001's (``audit_log``, ``audit_head``, ``audit_anchors``): every
0001 row is copied with ``owner = "~system"`` and ``stamp`` (its ``created_at`` in
microseconds), keeping its ``seq``, ``prev_hash`` and ``hash``, so the system
chain begins with 0001's chain, unchanged, and continues from its head (0001's
head row becomes the system chain's head, with the same id). Rows 0001 had
redacted (``salt`` NULL) are named by one ``audit.redact`` entry appended to the
system chain, as ``erase_user`` does from now on; then 0001's tables are
dropped. ``verify()`` checks the system chain across the boundary like any link.

Everything goes through the backend (``migrator.backend``: select, insert,
drop), so the migration names no engine. The row hash is the chain's format,
not a schema detail: it is the plugin's own function, which never changes.
"""

from __future__ import annotations

import importlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from clonestore.query import TRUE, Cond, OrderBy
from clonestore.spi import AppendOnly, Column, Index, TableSpec, Unique
from clonestore_audit._chain import new_salt, personal_digest, row_hash

_OLD = importlib.import_module("clonestore_audit.migrations.0001_initial")

SYSTEM: Final = "~system"
HEAD_ID: Final = "6a7d2c44-1c2e-4a53-9c1f-2f0e6d5b8a01"
_PAGE: Final = 1000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

LOG: Final = TableSpec(
    name="audit_entries",
    append_only=AppendOnly(
        erasable=(
            "actor_id",
            "subject_id",
            "ip_address",
            "user_agent",
            "changes",
            "details",
            "error_message",
            "salt",
        ),
        erased_at="redacted_at",
        purge_by="stamp",
    ),
    columns=(
        Column(name="id", kind="id"),
        Column(name="owner", kind="key", max_length=200),
        Column(name="seq", kind="int"),
        Column(name="stamp", kind="int"),
        Column(name="created_at", kind="datetime"),
        Column(name="action", kind="text", max_length=200),
        Column(name="resource_type", kind="text", nullable=True, max_length=200),
        Column(name="resource_id", kind="key", nullable=True, max_length=200),
        Column(name="result", kind="text", choices=("success", "failure", "noop")),
        Column(name="error_type", kind="text", nullable=True, max_length=200),
        Column(name="request_id", kind="text", nullable=True, max_length=200),
        Column(name="info", kind="json", nullable=True),
        Column(name="actor_id", kind="key", nullable=True, max_length=200),
        Column(name="subject_id", kind="key", nullable=True, max_length=200),
        Column(name="ip_address", kind="text", nullable=True, max_length=100),
        Column(name="user_agent", kind="text", nullable=True, max_length=1000),
        Column(name="changes", kind="json", nullable=True),
        Column(name="details", kind="json", nullable=True),
        Column(name="error_message", kind="text", nullable=True, max_length=10_000),
        Column(name="salt", kind="text", nullable=True, max_length=64),
        Column(name="personal_digest", kind="text", max_length=64),
        Column(name="prev_hash", kind="text", max_length=64),
        Column(name="hash", kind="text", max_length=64),
        Column(name="redacted_at", kind="datetime", nullable=True),
    ),
    unique=(Unique(("owner", "seq")),),
    indexes=(
        Index(("stamp",)),
        Index(("created_at",)),
        Index(("actor_id",)),
        Index(("subject_id",)),
        Index(("action",)),
        Index(("resource_id",)),
    ),
)

HEAD: Final = TableSpec(
    name="audit_heads",
    columns=(
        Column(name="id", kind="id"),
        Column(name="name", kind="key", max_length=200),
        Column(name="seq", kind="int"),
        Column(name="hash", kind="text", max_length=64),
        Column(name="stamp", kind="int"),
        Column(name="moved", kind="bool"),
    ),
    unique=(Unique(("name",)),),
)

ANCHORS: Final = TableSpec(
    name="audit_purges",
    columns=(
        Column(name="id", kind="id"),
        Column(name="owner", kind="key", max_length=200),
        Column(name="seq", kind="int"),
        Column(name="hash", kind="text", max_length=64),
        Column(name="removed", kind="int"),
        Column(name="purged_at", kind="datetime"),
    ),
    unique=(Unique(("owner", "seq")),),
)


#: The tables this migration creates, in order.
TABLES: Final = (LOG, HEAD, ANCHORS)


def _stamp(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def up(migrator: Any, db: Any) -> None:
    """Create the new tables, copy 0001's rows into the system chain, name the rows
    it had redacted in an ``audit.redact`` entry, drop 0001's tables."""
    backend = migrator.backend
    backend.create_spec_tables(TABLES)
    after = 0
    redacted: list[int] = []
    last: dict[str, Any] | None = None
    while True:
        rows = backend.select(_OLD.LOG, Cond("seq", "gt", after), (OrderBy("seq"),), limit=_PAGE)
        if not rows:
            break
        copies = [{**row, "owner": SYSTEM, "stamp": _stamp(row["created_at"])} for row in rows]
        for copy in copies:  # one by one: insert_many opens a transaction of its own
            backend.insert(LOG, copy)
        redacted.extend(row["seq"] for row in rows if row["salt"] is None)
        last = copies[-1]
        after = rows[-1]["seq"]
    for row in backend.select(_OLD.ANCHORS, TRUE):
        backend.insert(ANCHORS, {**row, "owner": SYSTEM})
    old_head = backend.get(_OLD.HEAD, HEAD_ID)
    seq, digest = (old_head["seq"], old_head["hash"]) if old_head else (0, "0" * 64)
    stamp = last["stamp"] if last is not None else 0
    if redacted:
        seq, digest, stamp = _name_redactions(backend, redacted, seq, digest, stamp)
    if old_head is not None or redacted:
        backend.insert(
            HEAD,
            {"id": HEAD_ID, "name": SYSTEM, "seq": seq, "hash": digest, "stamp": stamp,
             "moved": True},
        )  # fmt: skip
    backend.drop_spec_tables([_OLD.ANCHORS, _OLD.HEAD, _OLD.LOG])


def _name_redactions(
    backend: Any, seqs: list[int], seq: int, previous: str, stamp: int
) -> tuple[int, str, int]:
    """Append the ``audit.redact`` entry naming 0001's redacted rows after ``seq``."""
    runs: list[list[int]] = []
    for n in seqs:
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    now = max(_stamp(datetime.now(UTC)), stamp)
    salt = new_salt()
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()), "owner": SYSTEM, "seq": seq + 1, "stamp": now,
        "created_at": _EPOCH + timedelta(microseconds=now), "action": "audit.redact",
        "resource_type": "audit", "resource_id": None, "result": "success",
        "error_type": None, "request_id": None,
        "info": {"seqs": runs, "rows": len(seqs), "by": "0002_owner_chains"},
        "actor_id": None, "subject_id": None, "ip_address": None, "user_agent": None,
        "changes": None, "details": None, "error_message": None, "salt": salt,
        "redacted_at": None, "prev_hash": previous,
    }  # fmt: skip
    row["personal_digest"] = personal_digest(salt, row)
    row["hash"] = row_hash(row)
    backend.insert(LOG, row)
    return row["seq"], row["hash"], now


def down(migrator: Any, db: Any) -> None:
    """Drop the new tables (and every row in them) and re-create 0001's, empty: the
    owners' chains do not fit one chain."""
    backend = migrator.backend
    backend.drop_spec_tables(TABLES[::-1])
    backend.create_spec_tables(_OLD.TABLES)
