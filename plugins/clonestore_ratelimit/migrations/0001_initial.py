"""0001: the ratelimit plugin's tables, as they were at this version.

Frozen: the specs are copied here, not imported from the plugin, whose tables
move on; the backend creates them (``migrator.backend``), with its column
types, indexes and table options.
"""

from __future__ import annotations

from typing import Final

from clonestore.spi import Column, Index, Migrator, TableSpec, Unique

WINDOWS: Final = TableSpec(
    name="ratelimit_windows",
    ephemeral=True,
    columns=(
        Column(name="id", kind="id"),
        Column(name="user_id", kind="key", max_length=200),
        Column(name="endpoint", kind="key", max_length=200),
        Column(name="window_seconds", kind="int"),
        Column(name="window_start", kind="datetime"),
        Column(name="window_end", kind="datetime"),
        Column(name="count", kind="int"),
        Column(name="quota", kind="int"),
        Column(name="refused", kind="int"),
    ),
    unique=(Unique(("user_id", "endpoint", "window_seconds", "window_start")),),
    indexes=(
        Index(("window_end",)),
        Index(("user_id",)),
    ),
)

BUCKETS: Final = TableSpec(
    name="ratelimit_buckets",
    ephemeral=True,
    columns=(
        Column(name="id", kind="id"),
        Column(name="user_id", kind="key", max_length=200),
        Column(name="endpoint", kind="key", max_length=200),
        Column(name="tat_us", kind="int"),
        Column(name="admitted", kind="int"),
        Column(name="refused", kind="int"),
    ),
    unique=(Unique(("user_id", "endpoint")),),
    indexes=(
        Index(("tat_us",)),
        Index(("user_id",)),
    ),
)


#: The tables this migration creates, in order.
TABLES: Final = (WINDOWS, BUCKETS)


def up(migrator: Migrator, db: object) -> None:
    """Create the tables, with their indexes. The table options in the frozen specs
    (counters ``ephemeral``) are applied when a store opens on them."""
    migrator.backend.create_spec_tables(TABLES)


def down(migrator: Migrator, db: object) -> None:
    """Drop the tables (and every row in them)."""
    migrator.backend.drop_spec_tables(TABLES[::-1])
