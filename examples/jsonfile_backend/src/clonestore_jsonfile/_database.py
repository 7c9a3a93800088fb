"""The in-memory tables of one JSON file, and the file itself (private to the package).

:class:`Database` holds the rows of every table, the lock that serializes
access, the undo log of the open transaction, and reads and writes the file;
:func:`open_database` / :func:`release_database` share one ``Database`` among
the stores of a process that open the same path.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import IO, Any, Final

from clonestore import BackendError, ConfigurationError, StorageUnavailable
from clonestore.query import Expr
from clonestore.spi import Row, TableSpec, Unique
from clonestore.spi_reference import matches
from clonestore_jsonfile.encoding import decode_value, dumps, encode_value, loads

try:  # advisory locking keeps a second process away; not available on Windows
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FILE_FORMAT",
    "FILE_VERSION",
    "Database",
    "Table",
    "open_database",
    "release_database",
]

#: Written in every file, checked on load.
FILE_FORMAT: Final = "clonestore-jsonfile"
FILE_VERSION: Final = 1


def _row_text(row: Row) -> str:
    return dumps({name: encode_value(value) for name, value in row.items()})


class Table:
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


class Database:
    """One JSON file's tables, the lock that serializes access and the undo log."""

    def __init__(self, path: Path, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        self.lock = threading.RLock()
        self.tables: dict[str, Table] = {}
        # Tables in the file that no open store has declared yet: kept as written.
        self.unclaimed: dict[str, list[Any]] = {}
        # Undo entries of the open transaction: (table, id, row before or None).
        self.undo: list[tuple[Table, str, Row | None]] | None = None
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
        table = Table(spec)
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


_OPEN: dict[Path, Database] = {}
_OPEN_LOCK = threading.Lock()


def open_database(path: Path, fsync: bool) -> Database:
    """The database of ``path`` for one more store: shared within the process, read
    from the file by the first store that opens it."""
    with _OPEN_LOCK:
        db = _OPEN.get(path)
        if db is None:
            db = Database(path, fsync)
            db.open()
            _OPEN[path] = db
        db.users += 1
        return db


def release_database(db: Database) -> None:
    """One store fewer uses ``db``; the last one lets other processes open the file."""
    with _OPEN_LOCK:
        db.users -= 1
        if db.users == 0:
            db.release()
            if _OPEN.get(db.path) is db:
                del _OPEN[db.path]
