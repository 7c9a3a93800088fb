"""Dump and load: every table of a store, core and plugins', to one file and back, on
any backend (``store.dump(file)``, ``store.load(file)``, ``clonestore dump``/``load``).

The file is JSON Lines, gzip-compressed (zstd for a name ending ``.zst`` when the
``zstandard`` package is installed; plain for ``.jsonl``), version :data:`FORMAT_VERSION`:

* line 1, the header: ``{"format": "clonestore-dump", "version": 1, "dump_id", "created_at",
  "clonestore", "backend", "plugins", "migrations", "tables": [{"name", "columns":
  [[name, kind], ...]}, ...]}`` (the tables in dependency order: a table after those it
  refers to);
* for each table, ``{"table": NAME}``, then one JSON array per row (its values in the
  header's column order, in ``id`` order), then ``{"end": NAME, "rows": N, "sha256": H}``
  (``H`` over the table's row lines);
* last, ``{"done": true, "rows": {NAME: N, ...}}``: a file without it is truncated.

Values are JSON by kind: text, ids, keys, ints, floats (shortest round-trip form),
bools, lists, JSON and vectors (float32 values as floats) as themselves; datetimes as
ISO 8601 UTC with microseconds; decimals as strings. So every value comes back equal.

The rows travel through the SPI only (:class:`clonestore.spi.RowTransfer`, or its
reference over ``select`` and ``insert_many``): the core knows no engine, and loading
bypasses the repositories and plugins (no audit row, no cache change for loaded rows).
A load writes each batch and its progress mark (table ``clonestore_loads``) in one
transaction, so an interrupted load re-run with the same file continues where it
stopped, and nothing is half-written. It refuses a database holding rows it did not
write, unless told (``allow_non_empty``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final, Protocol, cast

from clonestore.errors import ClonestoreError, DumpError
from clonestore.query import TRUE, Cond, OrderBy
from clonestore.schema import Column, TableSpec, Unique, checker
from clonestore.spi import PRIMARY_KEY, Backend, Row, RowTransfer, capabilities_of
from clonestore.spi_reference import export_rows_reference


class Store(Protocol):
    """What a dump and a load use of a :class:`~clonestore.Store` (a protocol: this module
    is imported by the store's module)."""

    url: str
    backend: Backend
    tables: dict[str, TableSpec]
    _migrations: Any

    @property
    def in_transaction(self) -> bool: ...

    def migration_status(self) -> list[dict[str, Any]]: ...

    def _enabled_plugin_names(self) -> list[str]: ...

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "LOADS",
    "Progress",
    "dependency_order",
    "dump_store",
    "load_store",
    "read_header",
]

FORMAT: Final = "clonestore-dump"
#: The version of the file format this clonestore writes and the newest it reads.
FORMAT_VERSION: Final = 1
#: Rows per batch: one ``export_rows`` call, one transaction of a load.
BATCH: Final = 2000

#: A load's progress marks: for each table of the dump being loaded, how many of its rows
#: are in (``rows``), written in the transaction of each batch. Removed when the load
#: completes; a mark left behind is an interrupted load, which a re-run continues.
LOADS: Final = TableSpec(
    name="clonestore_loads",
    columns=(
        Column(name="id", kind="id"),
        Column(name="dump_id", kind="key", max_length=64),
        Column(name="table_name", kind="key", max_length=200),
        Column(name="rows", kind="int"),
        Column(name="updated_at", kind="datetime"),
    ),
    unique=(Unique(("dump_id", "table_name")),),
)

#: ``progress(table, rows_done, rows_total)``: called after each batch, with the rows
#: done and to do in the whole file (a resumed load counts the rows loaded before).
Progress = Callable[[str, int, int], None]

_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC: Final = b"\x1f\x8b"


# ----------------------------------------------------------------------------- tables


def _parents(spec: TableSpec, names: Sequence[str]) -> set[str]:
    """The tables ``spec`` refers to: its columns' ``references`` (a table name, or
    ``"table.column"``) and its ``foreign_keys`` (:class:`~clonestore.ForeignKey`: the
    table it ``references``), where the schema declares them."""
    found: set[str] = set()
    for column in spec.columns:
        target = getattr(column, "references", None)
        if isinstance(target, str):
            found.add(target.partition(".")[0])
        elif target is not None and isinstance(getattr(target, "table", None), str):
            found.add(target.table)
    for key in getattr(spec, "foreign_keys", ()) or ():
        table = getattr(key, "references", None) or getattr(key, "table", None)
        if isinstance(table, str):
            found.add(table)
    found.discard(spec.name)  # a table referring to itself: rows go in id order
    return {name for name in found if name in names}


def dependency_order(tables: Mapping[str, TableSpec]) -> list[TableSpec]:
    """The tables with each after those it refers to; otherwise in the given order (the
    core's tables first, users before what users own, then the plugins')."""
    names = list(tables)
    parents = {name: _parents(spec, names) for name, spec in tables.items()}
    ordered: list[TableSpec] = []
    placed: set[str] = set()
    while len(ordered) < len(names):
        ready = [n for n in names if n not in placed and parents[n] <= placed]
        if not ready:  # a cycle: keep the given order for the rest
            ready = [n for n in names if n not in placed]
        name = ready[0]
        ordered.append(tables[name])
        placed.add(name)
    return ordered


# ----------------------------------------------------------------------------- values


def _encode_datetime(value: datetime) -> str:
    if value.utcoffset():  # every backend returns UTC; anything else is converted
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def _decode_datetime(value: Any) -> datetime:
    if type(value) is not str:
        raise ValueError(f"expected an ISO 8601 string, got {value!r}")
    return datetime.fromisoformat(value)


def _decode_decimal(value: Any) -> Decimal:
    if type(value) is not str:
        raise ValueError(f"expected a decimal string, got {value!r}")
    return Decimal(value)


def _encoders(spec: TableSpec) -> list[tuple[int, Callable[[Any], Any]]]:
    """``(position, encode)`` of the columns whose values are not JSON as they are."""
    out: list[tuple[int, Callable[[Any], Any]]] = []
    for i, column in enumerate(spec.columns):
        if column.kind == "datetime":
            out.append((i, _encode_datetime))
        elif column.kind == "decimal":
            out.append((i, str))
        elif column.kind == "vector":
            out.append((i, lambda v: [float(x) for x in v]))
    return out


def _decoders(columns: Sequence[Column]) -> list[tuple[int, Callable[[Any], Any]]]:
    out: list[tuple[int, Callable[[Any], Any]]] = []
    for i, column in enumerate(columns):
        if column.kind == "datetime":
            out.append((i, _decode_datetime))
        elif column.kind == "decimal":
            out.append((i, _decode_decimal))
    return out


# ----------------------------------------------------------------------------- files


def _open_write(path: Path, name: str) -> IO[bytes]:
    """``path`` open for writing, compressed as the final file ``name`` says."""
    if name.endswith(".jsonl"):
        return open(path, "wb")
    if name.endswith(".zst"):
        zstd = _zstd()
        return cast(IO[bytes], zstd.ZstdCompressor(level=3).stream_writer(open(path, "wb")))
    return cast(IO[bytes], gzip.open(path, "wb", compresslevel=3))


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:
        raise DumpError(
            "a .zst dump needs the zstandard package (pip install zstandard); or name the "
            "file .gz for gzip",
            reason="compression",
        ) from None
    return zstandard


def _open_read(path: Path) -> IO[bytes]:
    try:
        raw = open(path, "rb")  # noqa: SIM115 - returned open, closed by the caller's with
    except OSError as error:
        raise DumpError(f"cannot read {path}: {error.strerror}", reason="missing") from None
    magic = raw.read(4)
    raw.seek(0)
    if magic.startswith(_GZIP_MAGIC):
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if magic == _ZSTD_MAGIC:
        return cast(IO[bytes], _zstd().ZstdDecompressor().stream_reader(raw, closefd=True))
    return raw


def _lines(path: Path) -> Iterator[bytes]:
    """The file's lines; a damaged compressed stream is a :class:`DumpError`."""
    with _open_read(path) as stream:
        buffered = io.BufferedReader(cast(Any, stream), buffer_size=1 << 20)
        try:
            yield from buffered
        except EOFError:
            raise DumpError(
                f"{path} is truncated (the compressed stream ends early): take the dump "
                "again",
                reason="truncated",
            ) from None
        except (OSError, ValueError) as error:
            if isinstance(error, DumpError):
                raise
            raise DumpError(
                f"{path} is damaged ({error}): take the dump again", reason="corrupt"
            ) from None
        except Exception as error:  # zstandard.ZstdError
            raise DumpError(
                f"{path} is damaged ({error}): take the dump again", reason="corrupt"
            ) from None


def _parse(line: bytes, path: Path, where: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        raise DumpError(
            f"{path} is not a clonestore dump or is damaged ({where}): take the dump again",
            reason="corrupt",
        ) from None


# ----------------------------------------------------------------------------- dump


def _export(backend: Backend) -> Callable[[TableSpec, str | None, int], list[Row]]:
    if "row_transfer" in capabilities_of(backend):
        return cast(RowTransfer, backend).export_rows
    return lambda table, after, limit: export_rows_reference(backend, table, after, limit)


def dump_store(
    store: Store,
    target: str | os.PathLike[str],
    *,
    batch_size: int = BATCH,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write every table of ``store`` to ``target`` (see the module docstring); the file
    appears complete or not at all (written to ``target.partial``, then renamed)."""
    if batch_size < 1:
        raise DumpError("batch_size must be at least 1", reason="usage")
    path = Path(target)
    backend = store.backend
    tables = dependency_order(
        {name: spec for name, spec in store.tables.items() if name not in _present_nowhere(store)}
    )
    export = _export(backend)
    migrations = [m["name"] if m.get("plugin") in (None, "") else f"{m['plugin']}/{m['name']}"
                  for m in store.migration_status() if m.get("applied")]
    started = time.perf_counter()
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "dump_id": uuid.uuid4().hex,
        "created_at": _encode_datetime(datetime.now(UTC)),
        "clonestore": _version(),
        "backend": backend.name,
        "plugins": store._enabled_plugin_names(),
        "migrations": migrations,
        "tables": [
            {"name": spec.name, "columns": [[c.name, c.kind] for c in spec.columns]}
            for spec in tables
        ],
    }
    total = sum(backend.count(spec, TRUE) for spec in tables)
    overall = 0
    partial = path.with_name(path.name + ".partial")
    counts: dict[str, int] = {}
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    try:
        with _open_write(partial, path.name) as out:
            out.write(dumps(header).encode() + b"\n")
            for spec in tables:
                out.write(dumps({"table": spec.name}).encode() + b"\n")
                encoders = _encoders(spec)
                names = spec.column_names
                digest = hashlib.sha256()
                done = 0
                after: str | None = None
                while True:
                    rows = export(spec, after, batch_size)
                    if not rows:
                        break
                    chunk: list[bytes] = []
                    for row in rows:
                        values = [row[name] for name in names]
                        for i, encode in encoders:
                            if values[i] is not None:
                                values[i] = encode(values[i])
                        chunk.append(dumps(values).encode() + b"\n")
                    data = b"".join(chunk)
                    digest.update(data)
                    out.write(data)
                    done += len(rows)
                    overall += len(rows)
                    after = rows[-1]["id"]
                    if progress is not None:
                        progress(spec.name, overall, max(overall, total))
                    if len(rows) < batch_size:
                        break
                counts[spec.name] = done
                out.write(dumps({"end": spec.name, "rows": done,
                                 "sha256": digest.hexdigest()}).encode() + b"\n")
            out.write(dumps({"done": True, "rows": counts}).encode() + b"\n")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return {
        "file": str(path),
        "dump_id": header["dump_id"],
        "rows": counts,
        "total_rows": sum(counts.values()),
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _present_nowhere(store: Store) -> set[str]:
    """The store's tables that do not exist (a plugin enabled on a database it never
    ran on): they are left out of the dump."""
    if store._migrations is None:
        return set()
    return set(store._migrations.missing_tables(list(store.tables.values())))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clonestore")
    except PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "unknown"


# ----------------------------------------------------------------------------- load


def read_header(source: str | os.PathLike[str]) -> dict[str, Any]:
    """The dump's header, checked: a clonestore dump of a format version this reads."""
    path = Path(source)
    for line in _lines(path):
        return _check_header(_parse(line, path, "header"), path)
    raise DumpError(f"{path} is empty: not a clonestore dump", reason="corrupt")


def _check_header(header: Any, path: Path) -> dict[str, Any]:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise DumpError(f"{path} is not a clonestore dump (no clonestore-dump header)",
                        reason="corrupt")
    version = header.get("version")
    if type(version) is not int or version > FORMAT_VERSION:
        raise DumpError(
            f"{path} is a dump of format version {version!r}; this clonestore reads up to "
            f"{FORMAT_VERSION}: upgrade clonestore to load it",
            reason="version",
        )
    return header


def _verify(path: Path, header: dict[str, Any]) -> dict[str, int]:
    """Read the whole file once: every table complete and unchanged (its count and
    sha256), the file not truncated. The rows of each table."""
    lines = _lines(path)
    next(lines)
    expected = [t["name"] for t in header["tables"]]
    counts: dict[str, int] = {}
    current: str | None = None
    digest = hashlib.sha256()
    rows = 0
    for number, line in enumerate(lines, start=2):
        if line.startswith(b"["):
            if current is None:
                break
            digest.update(line)
            rows += 1
            continue
        mark = _parse(line, path, f"line {number}")
        if not isinstance(mark, dict):
            break
        if "table" in mark and current is None:
            current, digest, rows = mark["table"], hashlib.sha256(), 0
        elif mark.get("end") == current and current is not None:
            if mark.get("rows") != rows or mark.get("sha256") != digest.hexdigest():
                raise DumpError(
                    f"{path}: the rows of table {current} do not match their checksum "
                    "(the file was changed or damaged): take the dump again",
                    reason="corrupt",
                )
            counts[current] = rows
            current = None
        elif mark.get("done") is True and current is None:
            if list(counts) != expected or mark.get("rows") != counts:
                break
            return counts
        else:
            break
    raise DumpError(
        f"{path} is truncated or damaged (it does not end as a complete dump): take the "
        "dump again",
        reason="truncated",
    )


def _plan(store: Store, header: dict[str, Any], path: Path) -> list[tuple[TableSpec, list[int],
                                                                        list[Column]]]:
    """For each table of the dump: the store's spec, where each of the spec's columns is
    in a dumped row (-1: not in the dump; its default), and the dumped columns' specs."""
    plan = []
    for table in header["tables"]:
        name = table["name"]
        spec = store.tables.get(name)
        if spec is None:
            raise DumpError(
                f"the dump has table {name}, which this store does not have: open the "
                f"store with the plugins the dump was taken with "
                f"({', '.join(header.get('plugins') or []) or 'none'})",
                reason="schema",
            )
        dumped = {column: (i, kind) for i, (column, kind) in enumerate(table["columns"])}
        for column, (_, kind) in dumped.items():
            if column not in spec.by_name:
                raise DumpError(
                    f"the dump's table {name} has column {column}, which this store lacks: "
                    "migrate the target (clonestore migrate) or upgrade clonestore",
                    reason="schema",
                )
            if spec.by_name[column].kind != kind:
                raise DumpError(
                    f"the dump's column {name}.{column} is a {kind}, the store's a "
                    f"{spec.by_name[column].kind}: load it with the clonestore version "
                    "that took it",
                    reason="schema",
                )
        positions = []
        for column in spec.columns:
            if column.name in dumped:
                positions.append(dumped[column.name][0])
            elif column.nullable or column.default is not None or column.default_factory:
                positions.append(-1)
            else:
                raise DumpError(
                    f"the dump's table {name} lacks column {column.name}, which this store "
                    "requires: load it with the clonestore version that took it",
                    reason="schema",
                )
        columns = [spec.by_name[column] for column, _ in table["columns"]]
        plan.append((spec, positions, columns))
    return plan


def _import(backend: Backend) -> Callable[[TableSpec, Sequence[Row]], None]:
    if "row_transfer" in capabilities_of(backend):
        return cast(RowTransfer, backend).import_rows
    return backend.insert_many


def _marks(backend: Backend) -> list[Row]:
    return backend.select(LOADS, TRUE, (OrderBy("id"),))


def load_store(
    store: Store,
    source: str | os.PathLike[str],
    *,
    batch_size: int = BATCH,
    allow_non_empty: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Load the dump ``source`` into ``store`` (see the module docstring); what was loaded."""
    if batch_size < 1:
        raise DumpError("batch_size must be at least 1", reason="usage")
    if store.in_transaction:
        raise DumpError("a load runs its own transactions: call it outside store.transaction()",
                        reason="usage")
    path = Path(source)
    started = time.perf_counter()
    header = read_header(path)
    plan = _plan(store, header, path)
    expected = _verify(path, header)
    backend = store.backend
    backend.create_tables([LOADS])
    dump_id = header["dump_id"]
    marks = _marks(backend)
    done = {m["table_name"]: m["rows"] for m in marks if m["dump_id"] == dump_id}
    others = sorted({m["dump_id"] for m in marks} - {dump_id})
    foreign = _foreign_rows(store, done)
    if foreign is not None and not allow_non_empty:
        if others:
            raise DumpError(
                f"{store.url} holds an interrupted load of another dump ({others[0]}): "
                "finish it by loading that dump again, or load into an empty database",
                reason="not_empty",
            )
        raise DumpError(
            f"{store.url} is not empty ({foreign}): a load never writes over data it did "
            "not create; load into an empty database, or pass --allow-non-empty "
            "(allow_non_empty=True) to add the dump's rows to these",
            reason="not_empty",
        )
    if others and foreign is None:  # marks of a load whose rows are gone
        for other in others:
            backend.delete(LOADS, Cond("dump_id", "eq", other))
    total = sum(expected.values())
    loaded_before = sum(done.values())
    insert = _import(backend)
    lines = _lines(path)
    next(lines)
    readers = {spec.name: _Reader(spec, positions, columns) for spec, positions, columns in plan}
    try:
        current: str | None = None
        skip = 0
        batch: list[Row] = []
        count = loaded_before
        for line in lines:
            if line.startswith(b"["):
                if skip:
                    skip -= 1
                    continue
                assert current is not None
                batch.append(readers[current].row(line, path))
                if len(batch) >= batch_size:
                    count += _write(backend, insert, readers[current].spec, batch, dump_id, done)
                    batch = []
                    if progress is not None:
                        progress(current, count, total)
                continue
            mark = json.loads(line)
            if "table" in mark:
                current = mark["table"]
                skip = done.get(current, 0)
            elif "end" in mark and current is not None:
                if batch:
                    count += _write(backend, insert, readers[current].spec, batch, dump_id, done)
                    batch = []
                if progress is not None:
                    progress(current, count, total)
                current = None
        backend.delete(LOADS, Cond("dump_id", "eq", dump_id))
    except ClonestoreError as error:
        if isinstance(error, DumpError):
            raise
        raise DumpError(
            f"the load into {store.url} stopped at table {current}: {error} (the batches "
            "written so far are kept, none half-written): fix the cause, then run the same "
            "load again to continue",
            reason="interrupted",
        ) from error
    return {
        "file": str(path),
        "dump_id": dump_id,
        "rows": expected,
        "total_rows": total,
        "resumed_from": loaded_before,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _foreign_rows(store: Store, done: Mapping[str, int]) -> str | None:
    """What shows the store holds rows this load did not write (a table not empty, or
    holding other rows than an interrupted run of this load wrote), or None."""
    backend = store.backend
    for name, spec in store.tables.items():
        rows = backend.count(spec, TRUE)
        if rows != done.get(name, 0):
            if name not in done:
                return f"table {name} holds {rows} row(s)"
            return (f"table {name} changed since the interrupted load ({rows} rows, "
                    f"{done[name]} loaded)")
    return None


class _Reader:
    """Turns a table's row lines into rows of the store's spec, every value checked."""

    def __init__(self, spec: TableSpec, positions: list[int], columns: list[Column]) -> None:
        self.spec = spec
        self.decoders = _decoders(columns)
        self.checks = [checker(column) for column in columns]
        self.names = [column.name for column in columns]
        #: Columns of the store's spec the dump lacks, with their defaults.
        self.missing = [
            (column, position) for column, position in zip(spec.columns, positions, strict=True)
            if position < 0
        ]

    def row(self, line: bytes, path: Path) -> Row:
        try:
            values = json.loads(line)
            if len(values) != len(self.checks):
                raise ValueError(f"{len(values)} values for {len(self.checks)} columns")
            for i, decode in self.decoders:
                if values[i] is not None:
                    values[i] = decode(values[i])
            row: Row = {
                name: check(value)
                for name, check, value in zip(self.names, self.checks, values, strict=True)
            }
        except (ValueError, TypeError, ClonestoreError) as error:
            raise DumpError(
                f"{path}: a row of table {self.spec.name} is not valid ({error}): take the "
                "dump again",
                reason="corrupt",
            ) from None
        for column, _ in self.missing:
            row[column.name] = column.default_value()
        return row


def _write(
    backend: Backend,
    insert: Callable[[TableSpec, Sequence[Row]], None],
    spec: TableSpec,
    rows: list[Row],
    dump_id: str,
    done: dict[str, int],
) -> int:
    """Insert one batch and move the table's progress mark, in one transaction."""
    loaded = done.get(spec.name, 0) + len(rows)
    mark = {
        "id": f"{dump_id}/{spec.name}",
        "dump_id": dump_id,
        "table_name": spec.name,
        "rows": loaded,
        "updated_at": datetime.now(UTC),
    }
    with backend.transaction():
        insert(spec, rows)
        backend.upsert(LOADS, PRIMARY_KEY, mark, {"rows": loaded, "updated_at": mark["updated_at"]})
    done[spec.name] = loaded
    return len(rows)
