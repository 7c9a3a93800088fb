"""The ``memory://`` backend: a real, in-process storage engine.

Not a fake: it implements the whole SPI with the meaning every backend has
(the contract tests run on it unchanged). Unique constraints hold among live
rows, changes are atomic, transactions really roll back (savepoints
included), and it is thread-safe: a transaction holds the database lock until
it ends, so transactions are serializable. Under ``open_async`` the same
backend serves asyncio tasks: the lock is :class:`clonestore.bridge.RLock`,
which a task awaits (the event loop runs on) and a thread blocks for.

``memory://`` opens a fresh private database; ``memory://NAME`` shares one
database among the stores of this process that name it.

Inside the package: ``_backend`` (the SPI), ``_database`` (tables, lock, undo
log), ``_table`` (one table's rows and indexes), ``_indexes`` (the kinds of
index a table keeps), ``_queries`` (ordering and aggregates).
"""

from __future__ import annotations

from typing import Any

from clonestore import hookimpl
from clonestore_memory._backend import MemoryBackend

__all__ = ["MemoryBackend", "clonestore_async_backends", "clonestore_backends"]


@hookimpl
def clonestore_backends() -> dict[str, Any]:
    """Serve ``memory://`` URLs."""
    return {"memory": MemoryBackend}


@hookimpl
def clonestore_async_backends() -> dict[str, Any]:
    """Serve ``memory://`` under ``open_async``: the same backend, which does no I/O
    and whose lock tasks await."""
    return {"memory": MemoryBackend}
