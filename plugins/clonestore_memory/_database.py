"""The tables of one memory:// database, and what makes changes to them
transactional (private to the package)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from clonestore import AlreadyExists
from clonestore.bridge import RLock
from clonestore.spi import Row, TableSpec
from clonestore_memory._notify import Channels
from clonestore_memory._table import Table

__all__ = ["Database", "open_database"]


class Database:
    """Tables plus the lock and undo log that make changes transactional.

    A transaction holds the lock until it ends, so transactions are
    serializable; every change inside one is undone if it raises.
    """

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}
        # Held by a transaction until it ends; under open_async, tasks await it.
        self.lock = RLock()
        # Undo entries of the open transaction: (table, id, row before or None).
        self.undo: list[tuple[Table, str, Row | None]] | None = None
        #: Tables kept append-only, by name: the spec that asked (a guard, once
        #: set, stays, as a trigger does on SQL engines).
        self.guarded: dict[str, TableSpec] = {}
        self.channels = Channels()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Hold the lock; undo everything done inside if it raises (messages sent
        inside included); deliver the messages once the outermost block commits."""
        with self.lock:
            outer = self.undo is None
            if outer:
                self.undo = []
            assert self.undo is not None
            mark = len(self.undo)
            channels = self.channels
            sent = len(channels.pending)
            committed: list[tuple[str, str]] = []
            try:
                yield
            except BaseException:
                self._rollback_to(mark)
                del channels.pending[sent:]
                raise
            finally:
                if outer:
                    self.undo = None
                    committed, channels.pending = channels.pending, []
        for channel, payload in committed if outer else ():
            channels.send(channel, payload)

    def notify(self, channel: str, payload: str) -> None:
        """Send now, or when the open transaction of this thread commits."""
        with self.lock:  # waits for another thread's transaction to end
            if self.undo is not None:
                self.channels.pending.append((channel, payload))
                return
        self.channels.send(channel, payload)

    def _rollback_to(self, mark: int) -> None:
        undo = self.undo
        assert undo is not None
        while len(undo) > mark:
            table, id, before = undo.pop()
            current = table.rows.get(id)
            if current is not None and before is not None:
                table.relink(current, before)
            elif current is not None:
                table.unlink(current)
            elif before is not None:
                table.link(before)

    def put(self, table: Table, row: Row) -> None:
        """Insert or replace a row, enforcing unique constraints; undoable."""
        clash = table.conflicts(row)
        if clash is not None:
            raise AlreadyExists(
                f"{table.spec.name}: {', '.join(clash.columns)} already used by another row",
                columns=clash.columns,
            )
        before = table.rows.get(row["id"])
        if before is not None:
            table.relink(before, row)
        else:
            table.link(row)
        assert self.undo is not None
        self.undo.append((table, row["id"], before))

    def remove(self, table: Table, row: Row) -> None:
        """Remove a stored row; undoable."""
        table.unlink(row)
        assert self.undo is not None
        self.undo.append((table, row["id"], row))


_SHARED: weakref.WeakValueDictionary[str, Database] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def open_database(shared_name: str) -> Database:
    """The database named ``shared_name`` in this process (made when first named), or a
    private new one when the name is empty."""
    if not shared_name:
        return Database()
    with _SHARED_LOCK:
        db = _SHARED.get(shared_name)
        if db is None:
            db = _SHARED[shared_name] = Database()
        return db
