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
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import parse_qsl, urlsplit

from clonestore import (
    AlreadyExists,
    BackendError,
    ClonestoreError,
    ConfigurationError,
    StorageUnavailable,
)
from clonestore.spi import (
    Aggregate,
    Expr,
    OrderBy,
    Row,
    TableSpec,
    Unique,
    apply_changes,
    matches,
    sort_rows,
)
from clonestore_jsonfile.encoding import decode_value, dumps, encode_value, loads

try:  # advisory locking keeps a second process away; not available on Windows
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FILE_FORMAT", "FILE_VERSION", "JsonFileBackend"]

#: Written in every file, checked on load.
FILE_FORMAT: Final = "clonestore-jsonfile"
FILE_VERSION: Final = 1

_TRUE_WORDS: Final = {"1", "true", "yes", "on"}
_FALSE_WORDS: Final = {"0", "false", "no", "off"}


def _copy(value: Any) -> Any:
    """A copy of a row value deep enough that callers cannot change stored rows."""
    if type(value) is list:
        return [_copy(v) for v in value]
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    return value


def _copy_row(row: Mapping[str, Any]) -> Row:
    return {name: _copy(value) for name, value in row.items()}


def _row_text(row: Row) -> str:
    return dumps({name: encode_value(value) for name, value in row.items()})


class _Table:
    """The rows of one table by id, with an index per unique constraint.

    Each row's JSON text is kept next to it, so a commit only joins strings.
    """

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.rows: dict[str, Row] = {}
        self.texts: dict[str, str] = {}
        self.unique: list[tuple[Unique, dict[tuple[Any, ...], str]]] = [
            (u, {}) for u in spec.unique
        ]

    def scoped_key(self, unique: Unique, row: Row) -> tuple[Any, ...] | None:
        """The row's value for ``unique``, or None when the constraint does not cover it
        (soft-deleted row, ``when`` not met, or a NULL in the key)."""
        if self.spec.soft_delete and row["deleted_at"] is not None:
            return None
        for name, value in unique.when:
            if row[name] != value:
                return None
        key = tuple(row[c] for c in unique.columns)
        return None if None in key else key

    def holder(self, unique: Unique, row: Row) -> str | None:
        """The id of the live row that has ``row``'s value for ``unique``, if any."""
        for candidate, index in self.unique:
            if candidate == unique:
                key = self.scoped_key(unique, row)
                return None if key is None else index.get(key)
        raise ConfigurationError(f"{self.spec.name} has no unique constraint on {unique.columns}")

    def clash(self, row: Row) -> Unique | None:
        """The first unique constraint ``row`` would break, or None."""
        for unique, index in self.unique:
            key = self.scoped_key(unique, row)
            if key is not None and index.get(key, row["id"]) != row["id"]:
                return unique
        return None

    def link(self, row: Row) -> None:
        self.rows[row["id"]] = row
        self.texts[row["id"]] = _row_text(row)
        for unique, index in self.unique:
            key = self.scoped_key(unique, row)
            if key is not None:
                index[key] = row["id"]

    def unlink(self, row: Row) -> None:
        del self.rows[row["id"]]
        del self.texts[row["id"]]
        for unique, index in self.unique:
            key = self.scoped_key(unique, row)
            if key is not None and index.get(key) == row["id"]:
                del index[key]

    def matching(self, where: Expr) -> list[Row]:
        return [row for row in self.rows.values() if matches(where, row)]


class _Database:
    """One JSON file's tables, the lock that serializes access and the undo log."""

    def __init__(self, path: Path, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        self.lock = threading.RLock()
        self.tables: dict[str, _Table] = {}
        # Tables in the file that no open store has declared yet: kept as written.
        self.unclaimed: dict[str, list[Any]] = {}
        # Undo entries of the open transaction: (table, id, row before or None).
        self.undo: list[tuple[_Table, str, Row | None]] | None = None
        self.users = 0
        self._lock_file: IO[bytes] | None = None

    # ------------------------------------------------------------------ file

    def open(self) -> None:
        """Take the file for this process and read it (a missing file is an empty database)."""
        if not self.path.parent.is_dir():
            raise ConfigurationError(f"jsonfile: directory {self.path.parent} does not exist")
        self._lock_exclusively()
        try:
            self._load()
        except BaseException:
            self.release()
            raise

    def _lock_exclusively(self) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            handle = lock_path.open("ab")
        except OSError as exc:
            raise StorageUnavailable(f"jsonfile: cannot open {lock_path}: {exc}", orig=exc) from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            raise StorageUnavailable(
                f"jsonfile: {self.path} is open in another process", orig=exc
            ) from exc
        self._lock_file = handle

    def release(self) -> None:
        """Let other processes open the file."""
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor drops the flock
            self._lock_file = None

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageUnavailable(f"jsonfile: cannot read {self.path}: {exc}", orig=exc) from exc
        try:
            document = loads(text)
            if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
                raise ValueError(f"not a {FILE_FORMAT} file")
            if document.get("version") != FILE_VERSION:
                raise ValueError(f"unsupported file version {document.get('version')!r}")
            tables = document["tables"]
            if not isinstance(tables, dict) or not all(
                isinstance(t, list) for t in tables.values()
            ):
                raise ValueError("'tables' must map table names to lists of rows")
        except (ValueError, KeyError) as exc:
            raise BackendError(f"jsonfile: {self.path} is not readable: {exc}", orig=exc) from exc
        self.unclaimed = tables

    def claim(self, spec: TableSpec) -> bool:
        """Make ``spec``'s table, filled from the file if it is there; whether it is new."""
        if spec.name in self.tables:
            return False
        table = _Table(spec)
        raw_rows = self.unclaimed.pop(spec.name, None)
        for raw in raw_rows or ():
            row = self._decode_row(spec, raw)
            if row["id"] in table.rows or table.clash(row) is not None:
                raise BackendError(f"jsonfile: duplicate or conflicting row in {spec.name}")
            table.link(row)
        self.tables[spec.name] = table
        return raw_rows is None

    def _decode_row(self, spec: TableSpec, raw: Any) -> Row:
        if not isinstance(raw, dict):
            raise BackendError(f"jsonfile: a row of {spec.name} is not an object")
        try:
            stored = {name: decode_value(value) for name, value in raw.items()}
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise BackendError(f"jsonfile: bad value in {spec.name}: {exc}", orig=exc) from exc
        unknown = set(stored).difference(spec.by_name)
        if unknown:
            # Refuse rather than drop data the running code does not know about.
            raise BackendError(
                f"jsonfile: {spec.name} in {self.path} has columns the table spec lacks: "
                f"{', '.join(sorted(unknown))}"
            )
        # Columns added since the file was written get their default.
        return {
            c.name: stored[c.name] if c.name in stored else c.default_value() for c in spec.columns
        }

    def save(self) -> None:
        """Write every table to a temporary file and move it over the file, atomically."""
        # One row per line: the file stays readable and diffs well.
        tables = [
            f"{dumps(name)}:["
            + "".join(f"\n{text}," for text in table.texts.values()).rstrip(",")
            + "]"
            for name, table in self.tables.items()
        ]
        tables.extend(f"{dumps(name)}:{dumps(rows)}" for name, rows in self.unclaimed.items())
        parts = [
            f'{{"format":{dumps(FILE_FORMAT)},"version":{FILE_VERSION},"tables":{{\n',
            ",\n".join(tables),
            "}}\n",
        ]
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with temp.open("w", encoding="utf-8") as out:
                out.write("".join(parts))
                out.flush()
                if self.fsync:
                    os.fsync(out.fileno())
            os.replace(temp, self.path)
            if self.fsync:
                self._fsync_directory()
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StorageUnavailable(
                f"jsonfile: cannot write {self.path}: {exc}", orig=exc
            ) from exc

    def _fsync_directory(self) -> None:
        # Makes the rename itself durable; some platforms cannot open directories.
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:  # pragma: no cover - platform dependent
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_OPEN: dict[Path, _Database] = {}
_OPEN_LOCK = threading.Lock()


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


class JsonFileBackend:
    """Storage in one JSON file, implementing :class:`clonestore.spi.Backend`.

    ``JsonFileBackend("jsonfile:///var/data/clones.json", fsync=True)``; the
    option ``fsync`` may also be given in the URL (``?fsync=false``: faster
    commits that a power cut may lose, though never half-write).
    """

    name = "jsonfile"
    capabilities: frozenset[str] = frozenset()

    def __init__(self, url: str, **options: Any) -> None:
        path, fsync = _parse_url(url, options)
        with _OPEN_LOCK:
            db = _OPEN.get(path)
            if db is None:
                db = _Database(path, fsync)
                db.open()
                _OPEN[path] = db
            db.users += 1
        self.path = path
        self._db = db
        self._closed = False

    # ------------------------------------------------------------------ plumbing

    def _table(self, spec: TableSpec) -> _Table:
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

    def _put(self, table: _Table, row: Row) -> None:
        """Store a new row (its id must be free), enforcing unique constraints; undoable."""
        clash = table.clash(row)
        if clash is not None:
            raise AlreadyExists(
                f"{table.spec.name}: {', '.join(clash.columns)} already used by another row"
            )
        table.link(row)
        assert self._db.undo is not None
        self._db.undo.append((table, row["id"], None))

    def _remove(self, table: _Table, row: Row) -> None:
        table.unlink(row)
        assert self._db.undo is not None
        self._db.undo.append((table, row["id"], row))

    def _replace(
        self, table: _Table, targets: Sequence[Row], changes: Mapping[str, Any]
    ) -> list[Row]:
        """Apply ``changes`` to ``targets``; unique constraints are checked once all
        rows have changed, as SQL checks them at the end of a statement."""
        new_rows = [_copy_row(apply_changes(row, changes)) for row in targets]
        for row in targets:
            self._remove(table, row)
        for row in new_rows:
            self._put(table, row)
        return [_copy_row(row) for row in new_rows]

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
                raise AlreadyExists(f"{table.name}: id {row['id']} already exists")
            self._put(t, _copy_row(row))

    def insert_many(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Insert complete rows, all or none."""
        t = self._table(table)
        with self._atomic():
            for row in rows:
                if row["id"] in t.rows:
                    raise AlreadyExists(f"{table.name}: id {row['id']} already exists")
                self._put(t, _copy_row(row))

    def get(self, table: TableSpec, id: str) -> Row | None:
        """The row with this id (live or not), or None."""
        t = self._table(table)
        with self._db.lock:
            row = t.rows.get(id)
            return None if row is None else _copy_row(row)

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
            return [_copy_row(row) for row in rows[offset:end]]

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
        """Apply ``changes`` to the matching rows; the changed rows in id order."""
        t = self._table(table)
        with self._atomic():
            targets = sorted(t.matching(where), key=lambda row: row["id"])
            return self._replace(t, targets, changes)

    def delete(self, table: TableSpec, where: Expr) -> int:
        """Remove matching rows for good; how many were removed."""
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
        """Insert ``insert_row`` or apply ``changes`` to the row holding its ``key`` values."""
        t = self._table(table)
        unique = next((u for u in table.unique if u.columns == tuple(key)), None)
        if unique is None:
            raise ConfigurationError(f"{table.name} has no unique constraint on {tuple(key)}")
        with self._atomic():
            holder = t.holder(unique, insert_row)
            if holder is None:
                if insert_row["id"] in t.rows:
                    raise AlreadyExists(f"{table.name}: id {insert_row['id']} already exists")
                row = _copy_row(insert_row)
                self._put(t, row)
                return _copy_row(row)
            return self._replace(t, [t.rows[holder]], changes)[0]

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
        with _OPEN_LOCK:
            if self._closed:
                return
            self._closed = True
            db = self._db
            db.users -= 1
            if db.users == 0:
                db.release()
                if _OPEN.get(db.path) is db:
                    del _OPEN[db.path]

    def __repr__(self) -> str:
        return f"<JsonFileBackend {self.path}{' closed' if self._closed else ''}>"


def _aggregate(agg: Aggregate, rows: list[Row]) -> Any:
    if agg.fn == "count":
        if agg.column is None:
            return len(rows)
        return sum(1 for r in rows if r[agg.column] is not None)
    if agg.column is None:
        raise ConfigurationError(f"aggregate {agg.fn!r} needs a column")
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
