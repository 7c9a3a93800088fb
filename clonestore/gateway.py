"""The one choke point between repositories and the backend.

Every read and write a repository makes passes through :class:`Gateway`, so
plugins see all of them, bulk ones included. When no plugin implements a hook,
the gateway skips it entirely: with no plugins a call costs one SPI call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from clonestore.errors import ClonestoreError
from clonestore.operations import Operation

if TYPE_CHECKING:
    from clonestore.store import Store

__all__ = ["Gateway"]

R = TypeVar("R")


class Gateway:
    """Runs SPI calls for repositories, with the plugins' hooks around them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.backend = store.backend
        hook = store.plugin_manager.hook
        self._hook = hook

        def implemented(name: str) -> bool:
            return bool(getattr(hook, name).get_hookimpls())

        self._before = implemented("clonestore_before_write")
        self._after = implemented("clonestore_after_write")
        self._failed = implemented("clonestore_write_failed")
        self._commit = implemented("clonestore_after_commit")
        self._read = implemented("clonestore_read")
        self._write_hooks = self._before or self._after or self._failed or self._commit

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction for one repository operation (a savepoint inside the
        caller's transaction), shared by the SPI calls the operation makes."""
        tx = self.store._tx
        if tx.levels and tx.op_depth:
            tx.op_depth += 1
            try:
                yield
            finally:
                tx.op_depth -= 1
            return
        with self.store.transaction():
            tx.op_depth += 1
            try:
                yield
            finally:
                tx.op_depth -= 1

    def write(self, make_op: Callable[[], Operation], run: Callable[[], R]) -> R:
        """Run one write: ``before_write``, the SPI call, ``after_write``, atomically.

        ``make_op`` describes the write; it is only called when a plugin looks.
        """
        store = self.store
        if not self._write_hooks and not store._tx.levels:
            return run()  # a single SPI call is atomic by itself
        op = make_op()
        try:
            with self.atomic():
                if self._before:
                    self._hook.clonestore_before_write(store=store, op=op)
                result = run()
                if self._after:
                    self._hook.clonestore_after_write(store=store, op=op, result=result)
                store._record(op)
        except ClonestoreError as error:
            if self._failed:
                store._write_failed(op, error)
            raise
        return result

    def read(self, make_op: Callable[[], Operation], run: Callable[[], Any]) -> Any:
        """Run one read, letting plugins answer it first (``clonestore_read``).

        What a plugin fetched stands: the backend is never asked twice.
        """
        if not self._read:
            return run()
        fetched: list[Any] = []

        def fetch() -> Any:
            value = run()
            fetched.append(value)
            return value

        result = self._hook.clonestore_read(store=self.store, op=make_op(), fetch=fetch)
        if result is not None:
            return result
        return fetched[-1] if fetched else run()
