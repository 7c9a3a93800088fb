"""The audit trail's tables: the log itself, the chain's head, and purge anchors."""

from __future__ import annotations

from typing import Final

from clonestore.spi import AppendOnly, Column, Index, TableSpec, Unique

__all__ = [
    "ANCHORS",
    "CHAINED",
    "HEAD",
    "HEAD_ID",
    "LOG",
    "PERSONAL",
    "RESULTS",
]

_PERSONAL: Final = (
    "actor_id",
    "subject_id",
    "ip_address",
    "user_agent",
    "changes",
    "details",
    "error_message",
)

#: What a recorded write came to. ``noop``: the write matched no row.
RESULTS: Final = ("success", "failure", "noop")

#: One row per event, in chain order (``seq``). Personal fields enter the
#: chain only through ``personal_digest`` (salted), so they can be erased.
#: Append-only: an update may only erase them (with the salt); rows leave
#: only by purge, oldest first.
LOG: Final = TableSpec(
    name="audit_log",
    append_only=AppendOnly(
        erasable=(*_PERSONAL, "salt"), erased_at="redacted_at", purge_by="seq"
    ),
    columns=(
        Column(name="id", kind="id"),
        Column(name="seq", kind="int"),
        Column(name="created_at", kind="datetime"),
        Column(name="action", kind="text", max_length=200),
        Column(name="resource_type", kind="text", nullable=True, max_length=200),
        Column(name="resource_id", kind="key", nullable=True, max_length=200),
        Column(name="result", kind="text", choices=RESULTS),
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
    unique=(Unique(("seq",)),),
    indexes=(
        Index(("created_at",)),
        Index(("actor_id",)),
        Index(("subject_id",)),
        Index(("action",)),
        Index(("resource_id",)),
    ),
)

#: Fields about a person: erased by ``erase_user``, chained through a salted digest.
PERSONAL: Final = _PERSONAL

#: Fields the row hash covers directly (with ``prev_hash``, so rows are chained).
CHAINED: Final = (
    "seq",
    "id",
    "created_at",
    "action",
    "resource_type",
    "resource_id",
    "result",
    "error_type",
    "request_id",
    "info",
    "personal_digest",
    "prev_hash",
)

#: The chain's head: the last row's ``seq`` and ``hash``. Appending moves it
#: with a compare-and-set, which orders concurrent appenders.
HEAD: Final = TableSpec(
    name="audit_head",
    columns=(
        Column(name="id", kind="id"),
        Column(name="name", kind="key", max_length=50),
        Column(name="seq", kind="int"),
        Column(name="hash", kind="text", max_length=64),
    ),
    unique=(Unique(("name",)),),
)
HEAD_ID: Final = "6a7d2c44-1c2e-4a53-9c1f-2f0e6d5b8a01"

#: Where a purge cut the chain: the last removed row's ``seq`` and ``hash``.
ANCHORS: Final = TableSpec(
    name="audit_anchors",
    columns=(
        Column(name="id", kind="id"),
        Column(name="seq", kind="int"),
        Column(name="hash", kind="text", max_length=64),
        Column(name="removed", kind="int"),
        Column(name="purged_at", kind="datetime"),
    ),
    unique=(Unique(("seq",)),),
)
