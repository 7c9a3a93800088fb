"""0001: the audit plugin's tables, as they were at this version.

Frozen: the specs are copied here, not imported from the plugin, whose tables
move on; the backend creates them (``migrator.backend``), with its column
types, indexes and table options.
"""

from __future__ import annotations

from typing import Final

from clonestore.spi import AppendOnly, Column, Index, Migrator, TableSpec, Unique

LOG: Final = TableSpec(
    name="audit_log",
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
        purge_by="seq",
    ),
    columns=(
        Column(name="id", kind="id"),
        Column(name="seq", kind="int"),
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
        Column(name="error_message", kind="text", nullable=True, max_length=10000),
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


#: The tables this migration creates, in order.
TABLES: Final = (LOG, HEAD, ANCHORS)


def up(migrator: Migrator, db: object) -> None:
    """Create the tables, with their indexes. The table options in the frozen specs
    (the log append-only) are applied when a store opens on them."""
    migrator.backend.create_spec_tables(TABLES)


def down(migrator: Migrator, db: object) -> None:
    """Drop the tables (and every row in them)."""
    migrator.backend.drop_spec_tables(TABLES[::-1])
