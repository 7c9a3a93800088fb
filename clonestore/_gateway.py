"""The one choke point between repositories and the backend.

Every read and write a repository makes passes through :class:`Gateway`, so
plugins see all of them, bulk ones included. Its methods are the SPI's
(:class:`clonestore.spi.Backend`), each with an ``action`` naming the call for
plugins (``"user.create"``); each builds the :class:`~clonestore.Operation`
plugins see and makes the SPI call.

When no plugin implements a hook, the gateway skips it entirely: with no
plugins and no transaction open a call costs one SPI call.

A method for a new SPI call follows the same pattern: call the backend
directly on the fast path, else describe the call as an ``Operation`` and
hand it with the bound SPI method and its arguments to ``_read`` or
``_write``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from clonestore._operations import Operation
from clonestore._row_security import ActingBackend
from clonestore._unit_of_work import UnitOfWork
from clonestore.errors import AlreadyExists, ClonestoreError
from clonestore.query import Expr, OrderBy
from clonestore.schema import TableSpec
from clonestore.spi import (
    Aggregate,
    Backend,
    Row,
    SelectColumns,
    TextSearch,
    UpdateAndInsert,
    UpdateAndInsertMany,
    VectorSearch,
    capabilities_of,
)
from clonestore.spi_reference import columns_of, update_and_insert_reference, with_copies
from clonestore.text import TextQuery, search_reference
from clonestore.vectors import nearest_reference

__all__ = ["ExplainConflict", "Gateway"]

T = TypeVar("T")

#: Rewrites a backend's :class:`AlreadyExists` for the caller (naming the fields
#: a caller knows: ``email``, not ``email_key``); plugins see the rewritten one.
ExplainConflict = Callable[[AlreadyExists], AlreadyExists]


class Gateway:
    """Runs SPI calls for repositories, with the plugins' hooks around them.

    :param backend: the store's backend.
    :param hook: the store's hook relay (``plugin_manager.hook``).
    :param unit: the store's unit of work (transactions, recorded writes).
    :param store: what the hooks are given as ``store``.
    """

    def __init__(self, backend: Backend, hook: Any, unit: UnitOfWork, store: object) -> None:
        self.backend = backend
        self.unit = unit
        self._hook = hook
        self._store = store
        #: The backend's capabilities (:func:`clonestore.spi.capabilities_of`), found once.
        self.capabilities = capabilities_of(backend)
        #: The backend's nearest() when it implements vector_search.
        self._engine_nearest = (
            cast(VectorSearch, backend).nearest
            if "vector_search" in self.capabilities
            else None
        )
        #: The backend's text_search() when it implements text_search.
        self._engine_text_search = (
            cast(TextSearch, backend).text_search
            if "text_search" in self.capabilities
            else None
        )

        #: Whether the backend reads column by column (capability select_columns).
        self._columns = "select_columns" in self.capabilities

        def implemented(name: str) -> bool:
            return bool(getattr(hook, name).get_hookimpls())

        self._before = implemented("clonestore_before_write")
        self._after = implemented("clonestore_after_write")
        self._failed = implemented("clonestore_write_failed")
        self._reads = implemented("clonestore_read")
        self._write_hooks = (
            self._before
            or self._after
            or self._failed
            or implemented("clonestore_after_commit")
            or implemented("clonestore_before_commit")
        )
        #: Called with the action before every write while the store refuses writes
        #: (core migrations pending: ``Store``); it raises, or clears itself.
        self.refuse_writes: Callable[[str], None] | None = None
        self._update_and_insert_native: UpdateAndInsert | None = (
            cast(UpdateAndInsert, backend) if "update_and_insert" in self.capabilities else None
        )
        #: The backend when it changes a row and inserts rows in one statement.
        self._update_and_insert_many: UpdateAndInsertMany | None = (
            cast(UpdateAndInsertMany, backend)
            if "update_and_insert_many" in self.capabilities
            else None
        )

    def acting_as(self, user_id: str) -> Gateway:
        """This gateway over the backend as ``store.for_user(user_id)`` calls it
        (capability ``row_security``: see :mod:`clonestore._row_security`)."""
        clone = copy.copy(self)
        acting = cast(Backend, ActingBackend(self.backend, user_id))
        clone.backend = acting
        if self._engine_nearest is not None:
            clone._engine_nearest = cast(VectorSearch, acting).nearest
        if self._engine_text_search is not None:
            clone._engine_text_search = cast(TextSearch, acting).text_search
        if self._update_and_insert_native is not None:
            clone._update_and_insert_native = cast(UpdateAndInsert, acting)
        if self._update_and_insert_many is not None:
            clone._update_and_insert_many = cast(UpdateAndInsertMany, acting)
        return clone

    # ------------------------------------------------------------------ reads

    def get(self, table: TableSpec, id: str, *, action: str) -> Row | None:
        """``backend.get``: the row with this id (live or not), or None."""
        if not self._reads:
            return self.backend.get(table, id)
        op = Operation(action=action, kind="get", table=table, key=id)
        row: Row | None = self._read(op, self.backend.get, table, id)
        return row

    def select(
        self,
        table: TableSpec,
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
        *,
        action: str,
    ) -> list[Row]:
        """``backend.select``: matching rows in ``order``, sliced."""
        if not self._reads:
            return self.backend.select(table, where, order, limit, offset)
        op = Operation(action=action, kind="select", table=table, where=where)
        rows: list[Row] = self._read(op, self.backend.select, table, where, order, limit, offset)
        return rows

    def select_columns(
        self,
        table: TableSpec,
        columns: Sequence[str],
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
        *,
        action: str,
    ) -> list[Sequence[Any]]:
        """``select``'s rows a column each, for ``columns``: the backend's
        ``select_columns`` (capability ``select_columns``) when no plugin reads; else
        :meth:`select` (the read plugins see), its rows read column by column."""
        if self._columns and not self._reads:
            return cast(SelectColumns, self.backend).select_columns(
                table, columns, where, order, limit, offset
            )
        return columns_of(self.select(table, where, order, limit, offset, action=action), columns)

    def count(self, table: TableSpec, where: Expr, *, action: str) -> int:
        """``backend.count``: how many rows match."""
        if not self._reads:
            return self.backend.count(table, where)
        op = Operation(action=action, kind="count", table=table, where=where)
        n: int = self._read(op, self.backend.count, table, where)
        return n

    def aggregate(
        self,
        table: TableSpec,
        where: Expr,
        group_by: Sequence[str],
        aggregates: Mapping[str, Aggregate],
        *,
        action: str,
    ) -> list[Row]:
        """``backend.aggregate``: one row per group."""
        if not self._reads:
            return self.backend.aggregate(table, where, group_by, aggregates)
        op = Operation(action=action, kind="aggregate", table=table, where=where)
        rows: list[Row] = self._read(
            op, self.backend.aggregate, table, where, group_by, aggregates
        )
        return rows

    def nearest(
        self,
        table: TableSpec,
        where: Expr,
        column: str,
        query: Sequence[float],
        metric: str,
        limit: int,
        cutoff: float | None = None,
        approximate: bool = False,
        *,
        action: str,
    ) -> list[tuple[Row, float]]:
        """``backend.nearest`` (capability ``vector_search``): the best ``limit`` rows
        and their scores; on a backend without the capability, the same answer
        computed here from the matching rows (:func:`clonestore.vectors.nearest_reference`).
        """
        if not self._reads:
            return self._nearest(table, where, column, query, metric, limit, cutoff, approximate)
        op = Operation(action=action, kind="nearest", table=table, where=where)
        found: list[tuple[Row, float]] = self._read(
            op, self._nearest, table, where, column, query, metric, limit, cutoff, approximate
        )
        return found

    def _nearest(
        self,
        table: TableSpec,
        where: Expr,
        column: str,
        query: Sequence[float],
        metric: str,
        limit: int,
        cutoff: float | None,
        approximate: bool,
    ) -> list[tuple[Row, float]]:
        backend = self.backend
        if self._engine_nearest is not None:
            return self._engine_nearest(
                table, where, column, query, metric, limit, cutoff, approximate
            )
        rows = backend.select(table, where)
        return nearest_reference(rows, column, query, metric, limit, cutoff)

    def text_search(
        self,
        table: TableSpec,
        where: Expr,
        fields: Sequence[str],
        query: TextQuery,
        limit: int,
        *,
        action: str,
    ) -> list[tuple[Row, float]]:
        """``backend.text_search`` (capability ``text_search``): the best ``limit`` rows
        and their BM25 scores; on a backend without the capability, the same answer
        computed here from the matching rows (:func:`clonestore.text.search_reference`).
        """
        if not self._reads:
            return self._text_search(table, where, fields, query, limit)
        op = Operation(action=action, kind="text_search", table=table, where=where)
        found: list[tuple[Row, float]] = self._read(
            op, self._text_search, table, where, fields, query, limit
        )
        return found

    def _text_search(
        self, table: TableSpec, where: Expr, fields: Sequence[str], query: TextQuery, limit: int
    ) -> list[tuple[Row, float]]:
        if self._engine_text_search is not None:
            return self._engine_text_search(table, where, fields, query, limit)
        return search_reference(self.backend.select(table, where), fields, query, limit)

    # ------------------------------------------------------------------ writes

    def insert(
        self,
        table: TableSpec,
        row: Row,
        *,
        action: str,
        explain_conflict: ExplainConflict | None = None,
    ) -> None:
        """``backend.insert``: one complete row.

        :param explain_conflict: rewrites the backend's :class:`AlreadyExists`.
        """
        if self.refuse_writes is not None:
            self.refuse_writes(action)
        if not self._write_hooks and not self.unit.active:
            return _call(explain_conflict, self.backend.insert, table, row)
        op = Operation(action=action, kind="insert", table=table, key=row["id"], changes=row)
        self._write(op, explain_conflict, self.backend.insert, table, row)
        return None

    def insert_many(
        self,
        table: TableSpec,
        rows: Sequence[Row],
        *,
        action: str,
        explain_conflict: ExplainConflict | None = None,
    ) -> None:
        """``backend.insert_many``: complete rows, all or none."""
        if self.refuse_writes is not None:
            self.refuse_writes(action)
        if not self._write_hooks and not self.unit.active:
            return _call(explain_conflict, self.backend.insert_many, table, rows)
        op = Operation(action=action, kind="insert_many", table=table, rows=rows)
        self._write(op, explain_conflict, self.backend.insert_many, table, rows)
        return None

    def update(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        *,
        action: str,
        key: str | None = None,
        explain_conflict: ExplainConflict | None = None,
    ) -> list[Row]:
        """``backend.update``: the changed rows as they are after the change.

        :param key: the id of the one row concerned, when there is one.
        """
        if self.refuse_writes is not None:
            self.refuse_writes(action)
        if not self._write_hooks and not self.unit.active:
            return _call(explain_conflict, self.backend.update, table, where, changes)
        op = Operation(
            action=action, kind="update", table=table, key=key, where=where, changes=changes
        )
        rows: list[Row] = self._write(
            op, explain_conflict, self.backend.update, table, where, changes
        )
        return rows

    def update_and_insert(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        row: Row,
        copied: Mapping[str, str],
        *,
        action: str,
        insert_action: str,
        key: str | None = None,
        explain_conflict: ExplainConflict | None = None,
    ) -> Row | None:
        """``backend.update_and_insert`` (capability ``update_and_insert``; otherwise
        :func:`clonestore.spi_reference.update_and_insert_reference` over the backend): the row
        inserted, or None when no row matched.

        Plugins see an update (``action``, ``key``) followed by an insert
        (``insert_action``), as if the two were made one after the other. When a
        plugin watches writes one by one (``before_write``, ``after_write``,
        ``write_failed``), they are, unless the backend makes both in one statement
        (capability ``update_and_insert_many``): then the update's ``before_write``
        runs before the statement, and its ``after_write`` (with the changed row) and
        the insert's ``before_write`` and ``after_write`` after it, in the same
        transaction, so a refusal still undoes both; an error of the statement itself
        is reported for the update.
        """
        if self.refuse_writes is not None:
            self.refuse_writes(action)
        if self._before or self._after or self._failed:
            if self._update_and_insert_many:
                return self._update_and_insert_watched(
                    table, where, changes, into, row, copied, action, insert_action, key,
                    explain_conflict,
                )  # fmt: skip
            with self.unit.atomic():
                rows = self.update(table, where, changes, action=action, key=key)
                if not rows:
                    return None
                complete = with_copies(row, rows[0], copied)
                self.insert(into, complete, action=insert_action, explain_conflict=explain_conflict)
                return complete
        args = (table, where, changes, into, row, copied)
        if not self._write_hooks and not self.unit.active:
            return _call(explain_conflict, self._update_and_insert, *args)
        with self.unit.atomic():
            inserted = _call(explain_conflict, self._update_and_insert, *args)
            if inserted is not None:
                self.unit.record(
                    Operation(
                        action=action, kind="update", table=table, key=key, where=where,
                        changes=changes,
                    )
                )  # fmt: skip
                self.unit.record(
                    Operation(
                        action=insert_action, kind="insert", table=into, key=inserted["id"],
                        changes=inserted,
                    )
                )  # fmt: skip
        return inserted

    def _update_and_insert_watched(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        row: Row,
        copied: Mapping[str, str],
        action: str,
        insert_action: str,
        key: str | None,
        explain_conflict: ExplainConflict | None,
    ) -> Row | None:
        """``update_and_insert`` in one statement with the write hooks around it."""
        native = self._update_and_insert_many
        assert native is not None
        hook, store = self._hook, self._store
        op = Operation(
            action=action, kind="update", table=table, key=key, where=where, changes=changes
        )
        try:
            with self.unit.atomic():
                if self._before:
                    hook.clonestore_before_write(store=store, op=op)
                done = _call(
                    explain_conflict, native.update_and_insert_many,
                    table, where, changes, into, (row,), copied,
                )  # fmt: skip
                changed: list[Row] = [] if done is None else [done[0]]
                if self._after:
                    hook.clonestore_after_write(store=store, op=op, result=changed)
                self.unit.record(op)
                if done is None:
                    return None
                inserted: Row = done[1][0]
                op = Operation(
                    action=insert_action, kind="insert", table=into, key=inserted["id"],
                    changes=inserted,
                )  # fmt: skip
                if self._before:
                    hook.clonestore_before_write(store=store, op=op)
                if self._after:
                    hook.clonestore_after_write(store=store, op=op, result=None)
                self.unit.record(op)
                return inserted
        except ClonestoreError as error:
            if self._failed:
                self.unit.failed(op, error)
            raise

    def _update_and_insert(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        row: Row,
        copied: Mapping[str, str],
    ) -> Row | None:
        native = self._update_and_insert_native
        if native is not None:
            return native.update_and_insert(table, where, changes, into, row, copied)
        return update_and_insert_reference(self.backend, table, where, changes, into, row, copied)

    def delete(self, table: TableSpec, where: Expr, *, action: str, key: str | None = None) -> int:
        """``backend.delete``: how many rows were removed for good.

        :param key: the id of the one row concerned, when there is one.
        """
        if self.refuse_writes is not None:
            self.refuse_writes(action)
        if not self._write_hooks and not self.unit.active:
            return self.backend.delete(table, where)
        op = Operation(action=action, kind="delete", table=table, key=key, where=where)
        n: int = self._write(op, None, self.backend.delete, table, where)
        return n

    def upsert(
        self,
        table: TableSpec,
        key_columns: Sequence[str],
        insert_row: Row,
        changes: Mapping[str, Any],
        *,
        action: str,
        key: str | None = None,
        explain_conflict: ExplainConflict | None = None,
    ) -> Row:
        """``backend.upsert``: insert ``insert_row`` or apply ``changes`` to the row with
        the same ``key_columns`` values; the row as stored.

        Plugins see ``insert_row`` as ``op.changes``. :param key: ``op.key``.
        """
        if self.refuse_writes is not None:
            self.refuse_writes(action)
        if not self._write_hooks and not self.unit.active:
            return _call(
                explain_conflict, self.backend.upsert, table, key_columns, insert_row, changes
            )
        op = Operation(action=action, kind="upsert", table=table, key=key, changes=insert_row)
        row: Row = self._write(
            op, explain_conflict, self.backend.upsert, table, key_columns, insert_row, changes
        )
        return row

    # ------------------------------------------------------------------ store-level hooks

    def export_user(self, user_id: str) -> list[Mapping[str, Any]]:
        """What plugins hold about a user (``clonestore_export_user``), one section each."""
        sections: list[Mapping[str, Any]] = self._hook.clonestore_export_user(
            store=self._store, user_id=user_id
        )
        return sections

    def erase_user(self, user_id: str) -> None:
        """Let plugins erase what they hold about a user (``clonestore_erase_user``)."""
        self._hook.clonestore_erase_user(store=self._store, user_id=user_id)

    # ------------------------------------------------------------------ with hooks

    def _write(
        self,
        op: Operation,
        explain_conflict: ExplainConflict | None,
        call: Callable[..., T],
        *args: Any,
    ) -> T:
        """``call(*args)`` with ``before_write`` and ``after_write``, atomically; recorded
        for ``after_commit``, reported to ``write_failed`` if it fails."""
        hook = self._hook
        try:
            with self.unit.atomic():
                if self._before:
                    hook.clonestore_before_write(store=self._store, op=op)
                result = _call(explain_conflict, call, *args)
                if self._after:
                    hook.clonestore_after_write(store=self._store, op=op, result=result)
                self.unit.record(op)
        except ClonestoreError as error:
            if self._failed:
                self.unit.failed(op, error)
            raise
        return result

    def _read(self, op: Operation, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)``, letting plugins answer it first (``clonestore_read``).

        What a plugin fetched stands: the backend is never asked twice.
        """
        fetched: list[Any] = []

        def fetch() -> Any:
            value = call(*args)
            fetched.append(value)
            return value

        result = self._hook.clonestore_read(store=self._store, op=op, fetch=fetch)
        if result is not None:
            return result
        return fetched[-1] if fetched else call(*args)


def _call(explain_conflict: ExplainConflict | None, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)``, its :class:`AlreadyExists` rewritten by ``explain_conflict``."""
    if explain_conflict is None:
        return call(*args)
    try:
        return call(*args)
    except AlreadyExists as exc:
        raise explain_conflict(exc) from exc.orig
