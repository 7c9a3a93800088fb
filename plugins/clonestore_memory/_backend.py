"""The memory:// backend class: the SPI over a :class:`Database` (private to the package)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from clonestore import (
    AlreadyExists,
    BackendError,
    ClonestoreError,
    ConfigurationError,
    ValidationError,
)
from clonestore import spi_reference as reference
from clonestore.query import And, Cond, Expr, OrderBy
from clonestore.spi import API_VERSION, PRIMARY_KEY, Aggregate, Row, TableSpec
from clonestore.spi_reference import (
    append_only_allows,
    append_only_refusal,
    apply_changes,
    copy_value,
    export_rows_reference,
    field_tokens,
    matches,
    missing_reference,
    search_reference,
    settle,
    still_referenced,
    with_copies,
)
from clonestore.text import TextQuery
from clonestore.vectors import FLOAT32_ROUNDOFF
from clonestore_memory._database import open_database
from clonestore_memory._notify import check_payload
from clonestore_memory._queries import ordered
from clonestore_memory._table import Table

__all__ = ["MemoryBackend"]


def _key_where(columns: Sequence[str], values: Sequence[Any]) -> Expr:
    conds = tuple(Cond(c, "eq", v) for c, v in zip(columns, values, strict=True))
    return conds[0] if len(conds) == 1 else And(conds)


def _taken_id(table: str, id: str) -> AlreadyExists:
    """The error of an insert whose id a row already has."""
    return AlreadyExists(f"{table}: id {id} already exists", columns=("id",))


class MemoryBackend:
    """In-process storage implementing :class:`clonestore.spi.Backend`."""

    name = "memory"
    #: The reference behaviour of each: ``listen_notify`` between the stores of
    #: one database in this process (see ``_notify``), ``append_only`` checked
    #: in Python with :func:`clonestore.spi_reference.append_only_allows`, ``ephemeral``
    #: trivially (nothing here survives the process), ``vector_search`` exactly,
    #: ``update_and_insert`` and ``update_and_insert_many`` under one hold of the lock,
    #: ``upsert_returning`` by copying out only the columns asked for, ``select_columns``
    #: by reading the selected rows a column at a time (copying lists and dicts only),
    #: ``bulk_copy`` as
    #: the reference of a large ``insert_many``: every row under one hold of the lock,
    #: all or none;
    #: ``row_transfer`` as its reference (``select`` by id, ``insert_many``);
    #: ``text_search`` as the reference, with each row's tokens kept while it is unchanged.
    #: The capabilities without a protocol; the others (row_transfer, vector_search,
    #: listen_notify, append_only, update_and_insert(_many), select_columns, text_search) are the
    #: protocols this class implements.
    capabilities: frozenset[str] = frozenset({"bulk_copy", "ephemeral", "upsert_returning"})
    #: The backend API this backend is written against (clonestore.spi.API_VERSION).
    api_version = API_VERSION

    def __init__(self, url: str = "memory://", **options: Any) -> None:
        parts = urlsplit(url)
        asked = [options.pop("row_security", False), *parse_qs(parts.query).get("row_security", [])]
        if any(value not in (False, "0", "false", "no", "off") for value in asked):
            raise ConfigurationError(
                "option row_security for memory://: row-level security is a PostgreSQL "
                "capability (postgresql://...?row_security=on); this backend does not offer it"
            )
        if options:
            raise ConfigurationError(f"memory:// takes no options, got {', '.join(options)}")
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
                raise _taken_id(table.name, row["id"])
            if table.foreign_keys:
                self._check_parents(table, (row,))
            db.put(t, t.copy_in(row))

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        t = self._table(table)
        db = self._db
        with db.atomic():
            if table.foreign_keys:
                self._check_parents(table, rows)
            for row in rows:
                if row["id"] in t.rows:
                    raise _taken_id(table.name, row["id"])
                db.put(t, t.copy_in(row))

    def export_rows(self, table: TableSpec, after: str | None, limit: int) -> list[Row]:
        """Capability ``row_transfer``: :func:`clonestore.spi_reference.export_rows_reference`."""
        return export_rows_reference(self, table, after, limit)

    def import_rows(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Capability ``row_transfer``: ``insert_many``, all or none."""
        self.insert_many(table, rows)

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
            return [t.copy_out(r) for r in self._selected(t, where, order, limit, offset)]

    def select_columns(
        self,
        table: TableSpec,
        columns: Sequence[str],
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Sequence[Any]]:
        """:meth:`select`'s rows a column each (capability ``select_columns``)."""
        t = self._table(table)
        with self._db.lock:
            rows = self._selected(t, where, order, limit, offset)
            return [t.column_out(rows, name) for name in columns]

    def _selected(
        self,
        t: Table,
        where: Expr,
        order: Sequence[OrderBy],
        limit: int | None,
        offset: int,
    ) -> Sequence[Row]:
        """The stored rows ``select`` returns copies of (under the lock)."""
        end = None if limit is None else offset + limit
        found = t.read_ordered(where, order, end) if order else None
        if found is not None:
            rows = found
        else:
            rows = t.matching(where)
            if order:
                rows = ordered(rows, order, end)
        return rows[offset:end]

    def text_search(
        self,
        table: TableSpec,
        where: Expr,
        fields: Sequence[str],
        query: TextQuery,
        limit: int,
    ) -> list[tuple[Row, float]]:
        """Capability ``text_search``: the reference
        (:func:`clonestore.spi_reference.search_reference`) over the matching rows, each
        row's tokens kept from one search to the next while the row is unchanged (the
        table drops a row's tokens when the row leaves or is
        replaced: a write, a rollback, an erasure; the cache checks it holds that row)."""
        t = self._table(table)
        with self._db.lock:
            rows = t.matching(where)
            cache = t.text_tokens.setdefault(tuple(fields), {})

            def tokens_of(row: Mapping[str, Any]) -> list[list[str]]:
                kept = cache.get(row["id"])
                if kept is not None and kept[0] is row:
                    return kept[1]
                tokens = field_tokens(row, fields)
                cache[row["id"]] = (row, tokens)
                return tokens

            found = search_reference(rows, fields, query, limit, tokens_of)
            return [(t.copy_out(row), value) for row, value in found]

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
        (one float32 BLAS product per owner and dimension), settled in double precision.
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
                FLOAT32_ROUNDOFF,
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
        return reference.aggregate(rows, group_by, aggregates)

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
            if table.foreign_keys:
                self._check_parents(table, updated, changes)
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
        (:func:`clonestore.spi_reference.update_and_insert_reference`) under one hold of the
        lock."""
        done = self.update_and_insert_many(table, where, changes, into, (row,), copied)
        return None if done is None else done[1][0]

    def update_and_insert_many(
        self,
        table: TableSpec,
        where: Expr,
        changes: Mapping[str, Any],
        into: TableSpec,
        rows: Sequence[Row],
        copied: Mapping[str, str],
    ) -> tuple[Row, list[Row]] | None:
        """Capability ``update_and_insert_many``: the reference meaning
        (:func:`clonestore.spi_reference.update_and_insert_many_reference`) under one hold
        of the lock."""
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
            if table.foreign_keys:
                self._check_parents(table, (new,), changes)
            db.put(t, new)
            inserted = [with_copies(row, new, copied) for row in rows]
            if into.foreign_keys:
                self._check_parents(into, inserted)
            for one in inserted:
                if one["id"] in child.rows:
                    raise _taken_id(into.name, one["id"])
                db.put(child, child.copy_in(one))
            return t.copy_out(new), inserted

    def delete(self, table: TableSpec, where: Expr) -> int:
        t = self._table(table)
        db = self._db
        with db.atomic():
            targets = t.matching(where)
            if targets and self._guard(table) is not None:
                raise append_only_refusal(table.name, "DELETE")
            for row in targets:
                db.remove(t, row)
            if targets:
                self._release_children(table, targets)
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
            if targets:
                self._release_children(table, targets)
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
        primary = tuple(key) == PRIMARY_KEY
        unique = next((u for u in table.unique if u.columns == tuple(key)), None)
        if unique is None and not primary:
            raise ConfigurationError(f"{table.name} has no unique constraint on {tuple(key)}")
        db = self._db
        with db.atomic():
            if unique is None:
                holder = insert_row["id"] if insert_row["id"] in t.rows else None
            else:
                holder = t.find_unique(unique, insert_row)
            if holder is None:
                row = t.copy_in(insert_row)
                if table.foreign_keys:
                    self._check_parents(table, (row,))
            else:
                row = t.copy_in(apply_changes(t.rows[holder], changes))
                guard = self._guard(table)
                if guard is not None and not append_only_allows(guard, t.rows[holder], row):
                    raise append_only_refusal(table.name, "UPDATE")
                if table.foreign_keys:
                    self._check_parents(table, (row,), changes)
            db.put(t, row)
            if returning is not None:
                return {name: copy_value(row[name]) for name in returning}
            return t.copy_out(row)

    # ------------------------------------------------------------------ foreign keys

    def _check_parents(
        self, table: TableSpec, rows: Sequence[Row], changes: Mapping[str, Any] | None = None
    ) -> None:
        """Refuse ``rows`` (new or changed by ``changes``) pointing at no row."""
        tables = self._db.tables
        for fk in table.foreign_keys:
            if changes is not None and not any(c in changes for c in fk.columns):
                continue
            parent = tables.get(fk.references)
            by_id = fk.referenced == PRIMARY_KEY
            for row in rows:
                values = [row[c] for c in fk.columns]
                if None in values:
                    continue
                if parent is None:
                    raise missing_reference(table.name, fk)
                if by_id:
                    if values[0] not in parent.rows:
                        raise missing_reference(table.name, fk)
                elif not parent.matching(_key_where(fk.referenced, values)):
                    raise missing_reference(table.name, fk)

    def _release_children(self, table: TableSpec, removed: Sequence[Row]) -> None:
        """After ``removed`` left ``table``: refuse (``restrict``) while rows still point
        at one of them, or set their columns to NULL (``set_null``)."""
        db = self._db
        for child in list(db.tables.values()):
            for fk in child.spec.foreign_keys:
                if fk.references != table.name:
                    continue
                keys = {tuple(row[c] for c in fk.referenced) for row in removed}
                for key in keys:
                    pointing = child.matching(_key_where(fk.columns, key))
                    if not pointing:
                        continue
                    if fk.on_delete == "restrict":
                        raise still_referenced(table.name, child.spec.name, fk)
                    nulls = dict.fromkeys(fk.columns)
                    for row in pointing:
                        db.put(child, child.copy_in({**row, **nulls}))

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
