"""``JsonFileBackend``: every table in memory, the whole database in one JSON file.

The file is read when the first store opens it and rewritten, atomically, each
time a transaction commits: the new content goes to a temporary file in the
same directory, is flushed (and fsync'ed unless ``fsync=false``), and replaces
the old file with :func:`os.replace`, so a reader or a crash sees the old file
or the new one, never half of one. A transaction (or a single write outside
one) that changed nothing writes nothing.

Within a process, every store opened on the same path shares one database
(as SQLite stores on one file do); another process that tries to open the
file while it is open here gets :class:`~clonestore.StorageUnavailable`. A
transaction holds the database lock until it ends, so transactions are
serializable; nested transactions are savepoints kept as an undo log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from clonestore import AlreadyExists, BackendError, ClonestoreError, ConfigurationError
from clonestore import spi_reference as reference
from clonestore.query import And, Cond, Expr, OrderBy
from clonestore.spi import PRIMARY_KEY, Aggregate, Row, TableSpec
from clonestore.spi_reference import (
    apply_changes,
    copy_row,
    missing_reference,
    sort_rows,
    still_referenced,
)
from clonestore_jsonfile._database import (
    FILE_FORMAT,
    FILE_VERSION,
    Table,
    open_database,
    release_database,
)

__all__ = ["FILE_FORMAT", "FILE_VERSION", "JsonFileBackend"]

_TRUE_WORDS: Final = {"1", "true", "yes", "on"}
_FALSE_WORDS: Final = {"0", "false", "no", "off"}


def _parse_url(url: str, options: Mapping[str, Any]) -> tuple[Path, bool]:
    parts = urlsplit(url)
    if parts.scheme != "jsonfile":
        raise ConfigurationError(f"not a jsonfile:// URL: {url!r}")
    raw_path = parts.netloc + parts.path
    if not raw_path or raw_path.endswith("/"):
        raise ConfigurationError(
            "jsonfile:// needs a file path: jsonfile:///abs/path.json or jsonfile://rel/path.json"
        )
    settings: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    settings.update(options)
    fsync = settings.pop("fsync", True)
    if isinstance(fsync, str):
        if fsync.lower() not in _TRUE_WORDS | _FALSE_WORDS:
            raise ConfigurationError(f"jsonfile: fsync must be true or false, got {fsync!r}")
        fsync = fsync.lower() in _TRUE_WORDS
    if type(fsync) is not bool:
        raise ConfigurationError(f"jsonfile: fsync must be true or false, got {fsync!r}")
    if settings:
        raise ConfigurationError(
            f"jsonfile:// takes only the option fsync, got {', '.join(sorted(settings))}"
        )
    return Path(os.path.abspath(raw_path)), fsync


def _taken_id(table: str, id: str) -> AlreadyExists:
    """The error of an insert whose id a row already has."""
    return AlreadyExists(f"{table}: id {id} already exists", columns=("id",))


class JsonFileBackend:
    """Storage in one JSON file, implementing :class:`clonestore.spi.Backend`.

    ``JsonFileBackend("jsonfile:///var/data/clones.json", fsync=True)``; the
    option ``fsync`` may also be given in the URL (``?fsync=false``: faster
    commits that a power cut may lose, though never half-write).
    """

    name = "jsonfile"
    #: The capabilities without a protocol it offers (bulk_copy, ephemeral, ...): none. A
    #: capability with a protocol is offered by implementing it, never named here.
    capabilities: frozenset[str] = frozenset()

    def __init__(self, url: str, **options: Any) -> None:
        path, fsync = _parse_url(url, options)
        self.path = path
        self._db = open_database(path, fsync)
        self._closed = False

    # ------------------------------------------------------------------ plumbing

    def _table(self, spec: TableSpec) -> Table:
        if self._closed:
            raise ClonestoreError("this jsonfile:// store is closed")
        try:
            return self._db.tables[spec.name]
        except KeyError:
            raise BackendError(f"table {spec.name} does not exist; call create_tables") from None

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """Hold the lock; undo what was done inside if it raises; save on the outermost exit."""
        db = self._db
        with db.lock:
            outer = db.undo is None
            if outer:
                db.undo = []
            assert db.undo is not None
            mark = len(db.undo)
            try:
                yield
                if outer and db.undo:
                    db.save()
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

    def _put(self, table: Table, row: Row) -> None:
        """Store a new row (its id must be free), enforcing unique constraints; undoable."""
        clash = table.clash(row)
        if clash is not None:
            raise AlreadyExists(
                f"{table.spec.name}: {', '.join(clash.columns)} already used by another row",
                columns=clash.columns,
            )
        table.link(row)
        assert self._db.undo is not None
        self._db.undo.append((table, row["id"], None))

    def _remove(self, table: Table, row: Row) -> None:
        table.unlink(row)
        assert self._db.undo is not None
        self._db.undo.append((table, row["id"], row))

    def _replace(
        self, table: Table, targets: Sequence[Row], changes: Mapping[str, Any]
    ) -> list[Row]:
        """Apply ``changes`` to ``targets``; unique constraints are checked once all
        rows have changed, as SQL checks them at the end of a statement."""
        new_rows = [copy_row(apply_changes(row, changes)) for row in targets]
        for row in targets:
            self._remove(table, row)
        for row in new_rows:
            self._put(table, row)
        return [copy_row(row) for row in new_rows]

    def _check_parents(
        self, table: TableSpec, rows: Sequence[Row], changes: Mapping[str, Any] | None = None
    ) -> None:
        """Foreign keys: refuse ``rows`` (new, or changed by ``changes``) pointing at no row."""
        for fk in table.foreign_keys:
            if changes is not None and not any(c in changes for c in fk.columns):
                continue
            parent = self._db.tables.get(fk.references)
            for row in rows:
                values = [row[c] for c in fk.columns]
                if None not in values and (
                    parent is None or not parent.matching(_key(fk.referenced, values))
                ):
                    raise missing_reference(table.name, fk)

    def _release_children(self, table: TableSpec, removed: Sequence[Row]) -> None:
        """Foreign keys, once ``removed`` left ``table``: refuse while rows point at one of
        them (``restrict``), or set the pointing columns to NULL (``set_null``)."""
        for child in list(self._db.tables.values()):
            for fk in child.spec.foreign_keys:
                if fk.references != table.name:
                    continue
                for row in removed:
                    where = _key(fk.columns, [row[c] for c in fk.referenced])
                    pointing = child.matching(where)
                    if pointing and fk.on_delete == "restrict":
                        raise still_referenced(table.name, child.spec.name, fk)
                    if pointing:
                        self._replace(child, pointing, dict.fromkeys(fk.columns))

    # ------------------------------------------------------------------ SPI

    def create_tables(self, specs: Sequence[TableSpec]) -> None:
        """Create missing tables (filled from the file when it has them)."""
        db = self._db
        with db.lock:
            if self._closed:
                raise ClonestoreError("this jsonfile:// store is closed")
            created = [db.claim(spec) for spec in specs]
            if any(created) and db.undo is None:
                db.save()

    def insert(self, table: TableSpec, row: Row) -> None:
        """Insert one complete row."""
        t = self._table(table)
        with self._atomic():
            if row["id"] in t.rows:
                raise _taken_id(table.name, row["id"])
            self._check_parents(table, [row])
            self._put(t, copy_row(row))

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Insert complete rows, all or none."""
        t = self._table(table)
        with self._atomic():
            self._check_parents(table, rows)
            for row in rows:
                if row["id"] in t.rows:
                    raise _taken_id(table.name, row["id"])
                self._put(t, copy_row(row))

    def get(self, table: TableSpec, id: str) -> Row | None:
        """The row with this id (live or not), or None."""
        t = self._table(table)
        with self._db.lock:
            row = t.rows.get(id)
            return None if row is None else copy_row(row)

    def select(
        self,
        table: TableSpec,
        where: Expr,
        order: Sequence[OrderBy] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        """Matching rows in ``order``, after ``offset``, at most ``limit``."""
        t = self._table(table)
        with self._db.lock:
            rows = t.matching(where)
            if order:
                sort_rows(rows, order)
            end = None if limit is None else offset + limit
            return [copy_row(row) for row in rows[offset:end]]

    def count(self, table: TableSpec, where: Expr) -> int:
        """How many rows match."""
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
        """One row per group (ordered by the group values), one value per alias."""
        t = self._table(table)
        with self._db.lock:
            rows = t.matching(where)
        return reference.aggregate(rows, group_by, aggregates)

    def update(self, table: TableSpec, where: Expr, changes: Mapping[str, Any]) -> list[Row]:
        """Apply ``changes`` to the matching rows; the changed rows in id order."""
        t = self._table(table)
        with self._atomic():
            targets = sorted(t.matching(where), key=lambda row: row["id"])
            updated = self._replace(t, targets, changes)
            self._check_parents(table, updated, changes)
            return updated

    def delete(self, table: TableSpec, where: Expr) -> int:
        """Remove matching rows for good; how many were removed."""
        t = self._table(table)
        with self._atomic():
            targets = t.matching(where)
            for row in targets:
                self._remove(t, row)
            self._release_children(table, targets)
            return len(targets)

    def upsert(
        self,
        table: TableSpec,
        key: Sequence[str],
        insert_row: Row,
        changes: Mapping[str, Any],
    ) -> Row:
        """Insert ``insert_row`` or apply ``changes`` to the row holding its ``key`` values
        (``PRIMARY_KEY``: the row with its id, deleted or not)."""
        t = self._table(table)
        primary = tuple(key) == PRIMARY_KEY
        unique = next((u for u in table.unique if u.columns == tuple(key)), None)
        if unique is None and not primary:
            raise ConfigurationError(f"{table.name} has no unique constraint on {tuple(key)}")
        with self._atomic():
            if unique is None:
                holder = insert_row["id"] if insert_row["id"] in t.rows else None
            else:
                holder = t.holder(unique, insert_row)
            if holder is None:
                if insert_row["id"] in t.rows:
                    raise _taken_id(table.name, insert_row["id"])
                row = copy_row(insert_row)
                self._check_parents(table, [row])
                self._put(t, row)
                return copy_row(row)
            replaced = self._replace(t, [t.rows[holder]], changes)
            self._check_parents(table, replaced, changes)
            return replaced[0]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing; nested blocks are savepoints. Commits write the file."""
        if self._closed:
            raise ClonestoreError("this jsonfile:// store is closed")
        with self._atomic():
            yield

    def health(self) -> dict[str, Any]:
        """``ok``, ``backend``, ``latency_ms``, the file's ``path`` and ``bytes``, counts."""
        started = time.perf_counter()
        report: dict[str, Any] = {
            "ok": not self._closed,
            "backend": self.name,
            "path": str(self.path),
        }
        try:
            with self._db.lock:
                report["tables"] = len(self._db.tables)
                report["rows"] = sum(len(t.rows) for t in self._db.tables.values())
            report["bytes"] = self.path.stat().st_size if self.path.exists() else 0
        except OSError as exc:
            report.update(ok=False, error=str(exc))
        report["latency_ms"] = (time.perf_counter() - started) * 1000
        return report

    def close(self) -> None:
        """Stop using the file; the last store to close lets other processes open it."""
        with self._db.lock:
            if self._closed:
                return
            self._closed = True
        release_database(self._db)

    def __repr__(self) -> str:
        return f"<JsonFileBackend {self.path}{' closed' if self._closed else ''}>"


def _key(columns: Sequence[str], values: Sequence[Any]) -> Expr:
    """``columns`` equal to ``values``, as a where-expression."""
    return And(tuple(Cond(c, "eq", v) for c, v in zip(columns, values, strict=True)))
