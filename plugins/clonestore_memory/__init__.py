"""The ``memory://`` backend: a real, in-process storage engine.

Not a fake: it implements the whole SPI with the meaning every backend has
(the contract tests run on it unchanged). Unique constraints hold among live
rows, changes are atomic, transactions really roll back (savepoints
included), and it is thread-safe: a transaction holds the database lock until
it ends, so transactions are serializable.

``memory://`` opens a fresh private database; ``memory://NAME`` shares one
database among the stores of this process that name it.
"""

from __future__ import annotations

import heapq
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from clonestore import AlreadyExists, ClonestoreError, ConfigurationError, hookimpl
from clonestore.spi import (
    Aggregate,
    And,
    Cond,
    Expr,
    OrderBy,
    Row,
    TableSpec,
    Unique,
    apply_changes,
    matches,
    sort_rows,
)

__all__ = ["MemoryBackend", "clonestore_backends"]

_MUTABLE_KINDS = frozenset({"json", "list", "vector"})


def _copy(value: Any) -> Any:
    if type(value) is list:
        return [_copy(v) for v in value]
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    return value


class _Table:
    """Rows by id, with an index per unique constraint and per indexed column."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.rows: dict[str, Row] = {}
        self.mutable = tuple(c.name for c in spec.columns if c.kind in _MUTABLE_KINDS)
        self.unique: list[tuple[Unique, dict[tuple[Any, ...], str]]] = [
            (u, {}) for u in spec.unique
        ]
        # Hash indexes for equality lookups on the leading column of every index
        # and unique constraint (email_key, user_id, session_id...).
        leading = [ix.columns[0] for ix in spec.indexes] + [u.columns[0] for u in spec.unique]
        indexed = dict.fromkeys(leading)
        self.lookup: dict[str, dict[Any, set[str]]] = {name: {} for name in indexed}

    def copy_in(self, row: Mapping[str, Any]) -> Row:
        out = dict(row)
        for name in self.mutable:
            out[name] = _copy(out[name])
        return out

    def copy_out(self, row: Row) -> Row:
        return self.copy_in(row)

    def _scoped_key(self, unique: Unique, row: Row) -> tuple[Any, ...] | None:
        if self.spec.soft_delete and row["deleted_at"] is not None:
            return None
        for name, value in unique.when:
            if row[name] != value:
                return None
        key = tuple(row[c] for c in unique.columns)
        return None if None in key else key

    def conflicts(self, row: Row) -> Unique | None:
        for unique, index in self.unique:
            key = self._scoped_key(unique, row)
            if key is not None:
                holder = index.get(key)
                if holder is not None and holder != row["id"]:
                    return unique
        return None

    def find_unique(self, unique: Unique, row: Row) -> str | None:
        for candidate, index in self.unique:
            if candidate == unique:
                key = self._scoped_key(unique, row)
                return None if key is None else index.get(key)
        raise ConfigurationError(f"{self.spec.name} has no unique constraint on {unique.columns}")

    def link(self, row: Row) -> None:
        self.rows[row["id"]] = row
        for unique, index in self.unique:
            key = self._scoped_key(unique, row)
            if key is not None:
                index[key] = row["id"]
        for name, lookup in self.lookup.items():
            lookup.setdefault(row[name], set()).add(row["id"])

    def unlink(self, row: Row) -> None:
        del self.rows[row["id"]]
        for unique, uindex in self.unique:
            key = self._scoped_key(unique, row)
            if key is not None and uindex.get(key) == row["id"]:
                del uindex[key]
        for name, lindex in self.lookup.items():
            ids = lindex.get(row[name])
            if ids is not None:
                ids.discard(row["id"])
                if not ids:
                    del lindex[row[name]]

    def candidates(self, where: Expr) -> list[Row]:
        """Rows that may match: narrowed by an indexed equality when there is one."""
        conds = where.items if isinstance(where, And) else (where,)
        for cond in conds:
            if isinstance(cond, Cond) and cond.op == "eq":
                if cond.column == "id":
                    row = self.rows.get(cond.value)
                    return [] if row is None else [row]
                index = self.lookup.get(cond.column)
                if index is not None:
                    return [self.rows[i] for i in index.get(cond.value, ())]
        return list(self.rows.values())

    def matching(self, where: Expr) -> list[Row]:
        return [row for row in self.candidates(where) if matches(where, row)]


class _Database:
    """Tables plus the lock and undo log that make changes transactional."""

    def __init__(self) -> None:
        self.tables: dict[str, _Table] = {}
        self.lock = threading.RLock()
        # Undo entries of the open transaction: (table, id, row before or None).
        self.undo: list[tuple[_Table, str, Row | None]] | None = None


_SHARED: weakref.WeakValueDictionary[str, _Database] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


class MemoryBackend:
    """In-process storage implementing :class:`clonestore.spi.Backend`."""

    name = "memory"
    capabilities: frozenset[str] = frozenset()

    def __init__(self, url: str = "memory://", **options: Any) -> None:
        if options:
            raise ConfigurationError(f"memory:// takes no options, got {', '.join(options)}")
        shared_name = urlsplit(url).netloc + urlsplit(url).path.strip("/")
        if shared_name:
            with _SHARED_LOCK:
                db = _SHARED.get(shared_name)
                if db is None:
                    db = _SHARED[shared_name] = _Database()
        else:
            db = _Database()
        self._db = db
        self._closed = False

    # ------------------------------------------------------------------ plumbing

    def _table(self, spec: TableSpec) -> _Table:
        if self._closed:
            raise ClonestoreError("this memory:// store is closed")
        try:
            return self._db.tables[spec.name]
        except KeyError:
            raise ClonestoreError(
                f"table {spec.name} does not exist; call create_tables first"
            ) from None

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """Hold the lock; undo everything done inside if it raises."""
        db = self._db
        with db.lock:
            outer = db.undo is None
            if outer:
                db.undo = []
            assert db.undo is not None
            mark = len(db.undo)
            try:
                yield
            except BaseException:
                self._rollback_to(mark)
                raise
            finally:
                if outer:
                    db.undo = None

    def _rollback_to(self, mark: int) -> None:
        undo = self._db.undo
        assert undo is not None
        while len(undo) > mark:
            table, id, before = undo.pop()
            current = table.rows.get(id)
            if current is not None:
                table.unlink(current)
            if before is not None:
                table.link(before)

    def _put(self, table: _Table, row: Row) -> None:
        """Insert or replace a row, enforcing unique constraints; undoable."""
        clash = table.conflicts(row)
        if clash is not None:
            raise AlreadyExists(
                f"{table.spec.name}: {', '.join(clash.columns)} already used by another row"
            )
        before = table.rows.get(row["id"])
        if before is not None:
            table.unlink(before)
        table.link(row)
        assert self._db.undo is not None
        self._db.undo.append((table, row["id"], before))

    def _remove(self, table: _Table, row: Row) -> None:
        table.unlink(row)
        assert self._db.undo is not None
        self._db.undo.append((table, row["id"], row))

    # ------------------------------------------------------------------ SPI

    def create_tables(self, specs: Sequence[TableSpec]) -> None:
        with self._db.lock:
            for spec in specs:
                existing = self._db.tables.get(spec.name)
                if existing is None:
                    self._db.tables[spec.name] = _Table(spec)

    def insert(self, table: TableSpec, row: Row) -> None:
        t = self._table(table)
        with self._atomic():
            if row["id"] in t.rows:
                raise AlreadyExists(f"{table.name}: id {row['id']} already exists")
            self._put(t, t.copy_in(row))

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        t = self._table(table)
        with self._atomic():
            for row in rows:
                if row["id"] in t.rows:
                    raise AlreadyExists(f"{table.name}: id {row['id']} already exists")
                self._put(t, t.copy_in(row))

    def get(self, table: TableSpec, id: str) -> Row | None:
        t = self._table(table)
        with self._db.lock:
            row = t.rows.get(id)
            return None if row is None else t.copy_out(row)

    def select(
        self,
        table: TableSpec,
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        t = self._table(table)
        with self._db.lock:
            rows = t.matching(where)
            end = None if limit is None else offset + limit
            if order:
                rows = _ordered(rows, order, end)
            return [t.copy_out(r) for r in rows[offset:end]]

    def count(self, table: TableSpec, where: Expr) -> int:
        t = self._table(table)
        with self._db.lock:
            return len(t.matching(where))

    def aggregate(
        self,
        table: TableSpec,
        where: Expr,
        group_by: Sequence[str],
        aggregates: Mapping[str, Aggregate],
    ) -> list[Row]:
        t = self._table(table)
        with self._db.lock:
            rows = t.matching(where)
        groups: dict[tuple[Any, ...], list[Row]] = {}
        for row in rows:
            groups.setdefault(tuple(row[c] for c in group_by), []).append(row)
        if not group_by:
            groups.setdefault((), [])
        out: list[Row] = []
        for key, members in groups.items():
            result: Row = dict(zip(group_by, key, strict=True))
            for alias, agg in aggregates.items():
                result[alias] = _aggregate(agg, members)
            out.append(result)
        return sort_rows(out, [OrderBy(c) for c in group_by])

    def update(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Row]:
        t = self._table(table)
        with self._atomic():
            targets = sorted(t.matching(where), key=lambda r: r["id"])
            updated = [t.copy_in(apply_changes(row, changes)) for row in targets]
            for row in updated:
                self._put(t, row)
            return [t.copy_out(r) for r in updated]

    def delete(self, table: TableSpec, where: Expr) -> int:
        t = self._table(table)
        with self._atomic():
            targets = t.matching(where)
            for row in targets:
                self._remove(t, row)
            return len(targets)

    def upsert(
        self,
        table: TableSpec,
        key: Sequence[str],
        insert_row: Row,
        changes: Mapping[str, Any],
    ) -> Row:
        t = self._table(table)
        unique = next((u for u in table.unique if u.columns == tuple(key)), None)
        if unique is None:
            raise ConfigurationError(f"{table.name} has no unique constraint on {tuple(key)}")
        with self._atomic():
            holder = t.find_unique(unique, insert_row)
            if holder is None:
                row = t.copy_in(insert_row)
            else:
                row = t.copy_in(apply_changes(t.rows[holder], changes))
            self._put(t, row)
            return t.copy_out(row)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._closed:
            raise ClonestoreError("this memory:// store is closed")
        with self._atomic():
            yield

    def health(self) -> dict[str, Any]:
        started = time.perf_counter()
        with self._db.lock:
            rows = sum(len(t.rows) for t in self._db.tables.values())
        return {
            "ok": not self._closed,
            "backend": self.name,
            "latency_ms": (time.perf_counter() - started) * 1000,
            "tables": len(self._db.tables),
            "rows": rows,
        }

    def close(self) -> None:
        self._closed = True


def _ordered(rows: list[Row], order: Sequence[OrderBy], end: int | None) -> list[Row]:
    """``rows`` in ``order``; only the first ``end`` are needed when it is given."""
    if end is not None and end < len(rows) // 4 and len({o.desc for o in order}) == 1:
        # One direction: a single tuple key gives the same order as sort_rows,
        # and a heap finds the first ``end`` rows without sorting them all.
        def key(row: Row) -> tuple[Any, ...]:
            return tuple(
                (True,) if row[o.column] is None else (False, row[o.column]) for o in order
            )

        pick = heapq.nlargest if order[0].desc else heapq.nsmallest
        return pick(end, rows, key=key)
    return sort_rows(rows, order)


def _aggregate(agg: Aggregate, rows: list[Row]) -> Any:
    if agg.fn == "count":
        if agg.column is None:
            return len(rows)
        return sum(1 for r in rows if r[agg.column] is not None)
    assert agg.column is not None
    values = [r[agg.column] for r in rows if r[agg.column] is not None]
    if not values:
        return None
    if agg.fn == "sum":
        return sum(values[1:], values[0])
    if agg.fn == "min":
        return min(values)
    if agg.fn == "max":
        return max(values)
    raise ConfigurationError(f"unknown aggregate {agg.fn!r}")


@hookimpl
def clonestore_backends() -> dict[str, Any]:
    """Serve ``memory://`` URLs."""
    return {"memory": MemoryBackend}
