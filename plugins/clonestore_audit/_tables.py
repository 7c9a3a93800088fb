"""The audit trail's tables: the entries (one chain per owner), each chain's head,
and purge anchors."""

from __future__ import annotations

from typing import Final

from clonestore.spi import AppendOnly, Column, Index, TableSpec, Unique

__all__ = [
    "ANCHORS",
    "CHAINED",
    "HEAD",
    "LOG",
    "PERSONAL",
    "RESULTS",
    "SYSTEM",
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

#: The owner of the rows that belong to no user (events with neither subject nor
#: actor, the anchors, the chain that 0001's single chain became).
SYSTEM: Final = "~system"

#: One row per event. Each owner (the subject user, else the actor, else
#: :data:`SYSTEM`) has a chain of its own: ``seq`` counts from 1 within it and
#: ``prev_hash`` links to the owner's previous row. ``stamp`` is ``created_at``
#: in microseconds (non-decreasing within a chain), by which purges cut. Personal
#: fields enter the chain only through ``personal_digest`` (salted), so they can be
#: erased. Append-only: an update may only erase them (with the salt); rows leave
#: only by purge, oldest first. ``partition_by``: a backend with time partitions keeps
#: it by month of ``stamp``, and a purge drops the months wholly past it whole.
LOG: Final = TableSpec(
    name="audit_entries",
    append_only=AppendOnly(
        erasable=(*_PERSONAL, "salt"), erased_at="redacted_at", purge_by="stamp"
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
    unique=(Unique(("owner", "seq")),),
    partition_by="stamp",
    indexes=(
        Index(("stamp",)),
        Index(("actor_id",)),
        Index(("subject_id",)),
        Index(("action",)),
        Index(("resource_id",)),
    ),
)

#: Fields about a person: erased by ``erase_user``, chained through a salted digest.
PERSONAL: Final = _PERSONAL

#: Fields the row hash covers directly (with ``prev_hash``, so rows are chained).
#: ``owner`` and ``stamp`` are not hashed (0001's rows, the first segment of the
#: system chain, were hashed without them): a row moved to another chain breaks
#: both chains' links, and ``stamp`` must equal ``created_at``, which is hashed.
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

#: Each chain's head: its owner (``name``), last row's ``seq``, ``hash`` and
#: ``stamp``, and whether it ``moved`` since the last global anchor. Appending
#: moves the owner's head with a compare-and-set, which orders that owner's
#: concurrent appenders (and no one else's).
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

#: Where a purge cut a chain: the owner, the last removed row's ``seq`` and ``hash``.
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
