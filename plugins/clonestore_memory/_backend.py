"""The memory:// backend class: the SPI over a :class:`Database` (private to the package)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from clonestore import (
    AlreadyExists,
    BackendError,
    ClonestoreError,
    ConfigurationError,
    ValidationError,
)
from clonestore.spi import (
    FLOAT64_ROUNDOFF,
    Aggregate,
    Expr,
    OrderBy,
    Row,
    TableSpec,
    append_only_allows,
    append_only_refusal,
    apply_changes,
    copy_value,
    matches,
    settle,
    sort_rows,
    with_copies,
)
from clonestore_memory._database import open_database
from clonestore_memory._notify import check_payload
from clonestore_memory._queries import aggregate, ordered
from clonestore_memory._table import Table

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """In-process storage implementing :class:`clonestore.spi.Backend`."""

    name = "memory"
    #: The reference behaviour of each: ``listen_notify`` between the stores of
    #: one database in this process (see ``_notify``), ``append_only`` checked
    #: in Python with :func:`clonestore.spi.append_only_allows`, ``ephemeral``
    #: trivially (nothing here survives the process), ``vector_search`` exactly,
    #: ``update_and_insert`` under one hold of the lock, ``upsert_returning`` by
    #: copying out only the columns asked for, ``bulk_copy`` as the reference of a
    #: large ``insert_many``: every row under one hold of the lock, all or none.
    capabilities: frozenset[str] = frozenset(
        {
            "vector_search",
            "bulk_copy",
            "listen_notify",
            "append_only",
            "ephemeral",
            "update_and_insert",
            "upsert_returning",
        }
    )
    #: The storage SPI this backend is written against (clonestore.spi_versions).
    spi_version = 2

    def __init__(self, url: str = "memory://", **options: Any) -> None:
        if options:
            raise ConfigurationError(f"memory:// takes no options, got {', '.join(options)}")
        parts = urlsplit(url)
        self._db = open_database(parts.netloc + parts.path.strip("/"))
        self._closed = False
        self._listeners: list[Callable[[], None]] = []

    def _table(self, spec: TableSpec) -> Table:
        if self._closed:
            raise ClonestoreError("this memory:// store is closed")
        try:
            return self._db.tables[spec.name]
        except KeyError:
            raise ClonestoreError(
                f"table {spec.name} does not exist; call create_tables first"
            ) from None

    def create_tables(self, specs: Sequence[TableSpec]) -> None:
        with self._db.lock:
            for spec in specs:
                existing = self._db.tables.get(spec.name)
                if existing is None:
                    self._db.tables[spec.name] = Table(spec)
                if spec.append_only is not None:
                    self._db.guarded[spec.name] = spec

    def _guard(self, table: TableSpec) -> TableSpec | None:
        """The append-only spec guarding ``table``, if one does."""
        return self._db.guarded.get(table.name) if self._db.guarded else None

    def insert(self, table: TableSpec, row: Row) -> None:
        t = self._table(table)
        db = self._db
        with db.atomic():
            if row["id"] in t.rows:
                raise AlreadyExists(f"{table.name}: id {row['id']} already exists")
            db.put(t, t.copy_in(row))

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        t = self._table(table)
        db = self._db
        with db.atomic():
            for row in rows:
                if row["id"] in t.rows:
                    raise AlreadyExists(f"{table.name}: id {row['id']} already exists")
                db.put(t, t.copy_in(row))

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
            end = None if limit is None else offset + limit
            found = t.read_ordered(where, order, end) if order else None
            if found is not None:
                rows = found
            else:
                rows = t.matching(where)
                if order:
                    rows = ordered(rows, order, end)
            return [t.copy_out(r) for r in rows[offset:end]]

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
    ) -> list[tuple[Row, float]]:
        """Capability ``vector_search``: exact nearest-k from the column's vector index
        (one BLAS product per owner and dimension), settled in double precision.
        There is no approximate index: ``approximate`` searches are exact too."""
        t = self._table(table)
        with self._db.lock:
            index = t.vectors.get(column)
            if index is None:
                raise ConfigurationError(f"{table.name}.{column} is not a vector column")
            rows = t.rows
            ranking: list[tuple[str, float | None]] = []
            ranked = index.ranked(where, list(query), metric)

            def fetch(wanted: int) -> list[tuple[Row, float | None]]:
                out: list[tuple[Row, float | None]] = []
                position = 0
                while len(out) < wanted:
                    if position == len(ranking):
                        step = next(ranked, None)
                        if step is None:
                            break
                        ranking.append(step)
                    id, distance = ranking[position]
                    position += 1
                    row = rows[id]
                    if matches(where, row):
                        out.append((row, distance))
                return out

            def scan() -> list[Row]:
                return t.matching(where)

            def max_norm() -> float:
                return index.max_norm(where, len(query))

            found = settle(
                fetch,
                scan,
                column,
                query,
                metric,
                limit,
                cutoff,
                FLOAT64_ROUNDOFF,
                expanded=True,
                max_norm=max_norm,
            )
            return [(t.copy_out(row), value) for row, value in found]

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
                result[alias] = aggregate(agg, members)
            out.append(result)
        return sort_rows(out, [OrderBy(c) for c in group_by])

    def update(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Row]:
        t = self._table(table)
        db = self._db
        with db.atomic():
            targets = sorted(t.matching(where), key=lambda r: r["id"])
            updated = [t.copy_in(apply_changes(row, changes)) for row in targets]
            guard = self._guard(table)
            if guard is not None:
                for old, new in zip(targets, updated, strict=True):
                    if not append_only_allows(guard, old, new):
                        raise append_only_refusal(table.name, "UPDATE")
            for row in updated:
                db.put(t, row)
            return [t.copy_out(r) for r in updated]

    def update_and_insert(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        row: Row,
        copied: Mapping[str, str],
    ) -> Row | None:
        """Capability ``update_and_insert``: the reference meaning
        (:func:`clonestore.spi.update_and_insert_reference`) under one hold of the lock."""
        t = self._table(table)
        child = self._table(into)
        db = self._db
        with db.atomic():
            targets = t.matching(where)
            if not targets:
                return None
            if len(targets) > 1:
                raise BackendError(
                    f"update_and_insert: {len(targets)} rows of {table.name} matched"
                )
            (old,) = targets
            new = t.copy_in(apply_changes(old, changes))
            guard = self._guard(table)
            if guard is not None and not append_only_allows(guard, old, new):
                raise append_only_refusal(table.name, "UPDATE")
            db.put(t, new)
            inserted = with_copies(row, new, copied)
            if inserted["id"] in child.rows:
                raise AlreadyExists(f"{into.name}: id {inserted['id']} already exists")
            db.put(child, child.copy_in(inserted))
            return inserted

    def delete(self, table: TableSpec, where: Expr) -> int:
        t = self._table(table)
        db = self._db
        with db.atomic():
            targets = t.matching(where)
            if targets and self._guard(table) is not None:
                raise append_only_refusal(table.name, "DELETE")
            for row in targets:
                db.remove(t, row)
            return len(targets)

    def purge(self, table: TableSpec, up_to: int) -> int:
        """Remove the rows of an append-only table up to ``up_to`` (capability
        ``append_only``); how many."""
        t = self._table(table)
        guard = self._guard(table)
        column = None if guard is None or guard.append_only is None else guard.append_only.purge_by
        if column is None:
            raise ConfigurationError(f"{table.name} has no append_only.purge_by column to purge by")
        if type(up_to) is not int:
            raise ValidationError("must be an integer", field="up_to")
        db = self._db
        with db.atomic():
            targets = [row for row in t.rows.values() if row[column] <= up_to]
            for row in targets:
                db.remove(t, row)
            return len(targets)

    def upsert(
        self,
        table: TableSpec,
        key: Sequence[str],
        insert_row: Row,
        changes: Mapping[str, Any],
        returning: Sequence[str] | None = None,
    ) -> Row:
        """Capability ``upsert_returning``: with ``returning``, only those columns."""
        t = self._table(table)
        unique = next((u for u in table.unique if u.columns == tuple(key)), None)
        if unique is None:
            raise ConfigurationError(f"{table.name} has no unique constraint on {tuple(key)}")
        db = self._db
        with db.atomic():
            holder = t.find_unique(unique, insert_row)
            if holder is None:
                row = t.copy_in(insert_row)
            else:
                row = t.copy_in(apply_changes(t.rows[holder], changes))
                guard = self._guard(table)
                if guard is not None and not append_only_allows(guard, t.rows[holder], row):
                    raise append_only_refusal(table.name, "UPDATE")
            db.put(t, row)
            if returning is not None:
                return {name: copy_value(row[name]) for name in returning}
            return t.copy_out(row)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._closed:
            raise ClonestoreError("this memory:// store is closed")
        with self._db.atomic():
            yield

    # ------------------------------------------------------------------ listen_notify

    def notify(self, channel: str, payload: str) -> None:
        """Send ``payload`` to the listeners of ``channel`` on this database; inside a
        transaction, when the outermost one commits."""
        if self._closed:
            raise ClonestoreError("this memory:// store is closed")
        check_payload(payload)
        self._db.notify(channel, payload)

    def listen(self, channel: str, callback: Callable[[str | None], None]) -> Callable[[], None]:
        """Call ``callback(payload)`` from the delivery thread for each message on
        ``channel``; returns the stop function."""
        if self._closed:
            raise ClonestoreError("this memory:// store is closed")
        stop = self._db.channels.listen(channel, callback)
        self._listeners.append(stop)
        return stop

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
        listeners, self._listeners = self._listeners, []
        for stop in listeners:
            stop()
