"""The unit of work: a store's transactions, as seen by the calling thread or task.

One :class:`UnitOfWork` per store owns everything a transaction carries
besides the backend's own transaction:

* the open levels (``store.transaction()`` blocks, outermost first; a nested
  block is a savepoint) and, per level, the writes recorded in it;
* how many repository operations are running inside the innermost level
  (their SPI calls share one savepoint instead of opening one each);
* the failed writes whose ``clonestore_write_failed`` waits for the outermost
  transaction to end, so that what the hook writes is not rolled back.

That state lives in a :class:`contextvars.ContextVar`, so it is per thread
and per asyncio task (many tasks may share one thread): each starts outside
any transaction. The state names its owner (:func:`clonestore.bridge.task_or_thread`):
a task or thread that inherits the context of one inside a transaction
(``asyncio.create_task``, ``asyncio.to_thread``) is not in that transaction,
as it is not for the backend, whose transactions are per task or thread too.
The state exists only while a transaction is open: outside one,
:attr:`UnitOfWork.active` is one ``ContextVar.get``.

The unit of work knows nothing of plugins: the store hands it callbacks,
``after_commit(ops)``, ``write_failed(op, error)`` and, optionally,
``before_commit(ops)``.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from clonestore._operations import Operation
from clonestore.bridge import task_or_thread
from clonestore.errors import ClonestoreError

__all__ = ["UnitOfWork"]


class _Work:
    """What the open transactions of one thread or task carry."""

    __slots__ = ("failures", "levels", "op_depth", "owner")

    def __init__(self) -> None:
        self.owner = task_or_thread()
        # One list of recorded writes per open level, outermost first.
        self.levels: list[list[Operation]] = []
        self.op_depth = 0
        self.failures: list[tuple[Operation, ClonestoreError]] = []


class UnitOfWork:
    """Transactions of one store: savepoints, recorded writes, deferred failure reports.

    :param begin: opens the backend's transaction (``backend.transaction``);
        nested calls must be savepoints.
    :param after_commit: called with the surviving writes, in order, once the
        outermost transaction commits (never after a rollback).
    :param write_failed: called for a failed write once no transaction is open.
    :param before_commit: called with the surviving writes, in order, inside the
        outermost transaction just before it commits (when it wrote anything);
        an error it raises rolls the transaction back.
    """

    def __init__(
        self,
        begin: Callable[[], AbstractContextManager[None]],
        after_commit: Callable[[Sequence[Operation]], None],
        write_failed: Callable[[Operation, ClonestoreError], None],
        before_commit: Callable[[Sequence[Operation]], None] | None = None,
    ) -> None:
        self._begin = begin
        self._before_commit = before_commit
        self._after_commit = after_commit
        self._write_failed = write_failed
        self._work: contextvars.ContextVar[_Work | None] = contextvars.ContextVar(
            "clonestore_unit_of_work", default=None
        )
        self._closed = False

    def _current(self) -> _Work | None:
        """The calling thread's or task's open transactions (not those of the one whose
        context it inherited)."""
        work = self._work.get()
        if work is not None and work.owner != task_or_thread():
            return None
        return work

    @property
    def active(self) -> bool:
        """Whether the calling thread or task is inside a transaction."""
        return self._current() is not None

    def close(self) -> None:
        """Refuse new transactions from now on (the store is closed)."""
        self._closed = True

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing; nested blocks are savepoints.

        ``after_commit`` runs once the outermost block commits, with the writes
        that survived (those of rolled-back savepoints are dropped);
        ``write_failed`` runs for the writes that failed inside the block once
        the outermost block has ended, committed or rolled back.
        """
        if self._closed:
            raise ClonestoreError("this store is closed; open a new one with clonestore.open()")
        work = self._current()
        token = None
        if work is None:
            work = _Work()
            token = self._work.set(work)
        levels = work.levels
        levels.append([])
        saved_depth, work.op_depth = work.op_depth, 0
        committed = False
        try:
            with self._begin():
                yield
                if len(levels) == 1 and levels[0] and self._before_commit is not None:
                    self._before_commit(levels[0])
            committed = True
        finally:
            work.op_depth = saved_depth
            ops = levels.pop()
            try:
                if committed:
                    if levels:
                        levels[-1].extend(ops)
                    elif ops:
                        self._after_commit(ops)
            finally:
                if token is not None:
                    self._work.reset(token)
                    if work.failures:
                        self._report(work.failures)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction for one repository operation (a savepoint inside the
        caller's transaction), shared by the SPI calls the operation makes."""
        work = self._current()
        if work is not None and work.op_depth:
            work.op_depth += 1
            try:
                yield
            finally:
                work.op_depth -= 1
            return
        with self.transaction():
            work = self._current()
            assert work is not None
            work.op_depth += 1
            try:
                yield
            finally:
                work.op_depth -= 1

    def record(self, op: Operation) -> None:
        """Keep a successful write for ``after_commit`` (dropped if its level rolls back)."""
        work = self._current()
        if work is not None:
            work.levels[-1].append(op)

    def failed(self, op: Operation, error: ClonestoreError) -> None:
        """Report a failed write now, or when the outermost transaction ends."""
        work = self._current()
        if work is not None:
            work.failures.append((op, error))
        else:
            self._write_failed(op, error)

    def _report(self, failures: list[tuple[Operation, ClonestoreError]]) -> None:
        # When the transaction's own error is propagating, it is the one the
        # caller must see; a hook's error is attached to it as a note.
        propagating = sys.exception()
        first: Exception | None = None
        for op, error in failures:
            try:
                self._write_failed(op, error)
            except Exception as exc:
                if propagating is not None:
                    propagating.add_note(f"clonestore_write_failed({op.action}) raised {exc!r}")
                elif first is None:
                    first = exc
        if first is not None:
            raise first
