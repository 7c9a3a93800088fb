"""0003: ``audit_entries`` loses its index on ``created_at`` (issue 27).

``stamp`` is ``created_at`` in microseconds (``verify()`` holds them equal), and
its index serves every search by time: ``find(since=..., until=...)``,
``find_by_user(since=...)`` and ``user_statistics`` ask for ``stamp`` ranges, and
purges cut by ``stamp``. The second index cost every audited write one more
B-tree insert per entry. The tables are otherwise 0002's (frozen there); the
specs below are 0002's with that index left out, and with the time-partition
hint the live spec carries since the partitioned layout (``partition_by="stamp"``:
a hint to a backend with time partitions, no DDL of its own, so no migration).
"""

from __future__ import annotations

import importlib
from typing import Any, Final

import attrs

_PREVIOUS = importlib.import_module("clonestore_audit.migrations.0002_owner_chains")

_INDEX: Final = "ix_audit_entries_created_at"

LOG: Final = attrs.evolve(
    _PREVIOUS.LOG,
    indexes=tuple(index for index in _PREVIOUS.LOG.indexes if index.columns != ("created_at",)),
    partition_by="stamp",
)
HEAD: Final = _PREVIOUS.HEAD
ANCHORS: Final = _PREVIOUS.ANCHORS

#: The tables as this migration leaves them, in order.
TABLES: Final = (LOG, HEAD, ANCHORS)


def up(migrator: Any, db: Any) -> None:
    """Drop the index on ``audit_entries.created_at``."""
    migrator.migrate(migrator.drop_index(LOG.name, _INDEX))


def down(migrator: Any, db: Any) -> None:
    """Create it again."""
    migrator.migrate(migrator.add_index(LOG.name, ("created_at",), name=_INDEX))
