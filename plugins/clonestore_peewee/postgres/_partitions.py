"""The partitioned layout (``layout=partitioned``): time partitions on PostgreSQL.

``postgresql://.../db?layout=partitioned`` (or ``clonestore migrate --layout
partitioned``) applies the migrations as usual, then converts each table whose
spec names a ``partition_by`` column (the core's ``turns`` by ``created_at``,
the audit's ``audit_entries`` by ``stamp``, microseconds) into a table
range-partitioned by month (declarative partitioning), idempotently, under the
schema lock, one transaction per table:

* the table is renamed aside, created anew ``PARTITION BY RANGE`` with the same
  columns, defaults and checks, its rows copied, the old one dropped;
* one partition per month from the month of its oldest row to :data:`AHEAD`
  months past the current one (``<table>_pYYYYMM``), and a default partition
  (``<table>_pdefault``) for rows outside them (an imported row of long ago);
* the primary key and unique indexes get the partition column appended (the
  engine requires it), keeping their names; the other indexes, foreign keys,
  triggers (the audit's append-only guard) and row-level security policies are
  created again as they were;
* uniqueness over the whole table (ids, ``(session_id, turn_index)``,
  ``(owner, seq)``) is kept by a trigger (:func:`unique_trigger`): under a
  transaction-scoped advisory lock on the key, it looks for the key in every
  partition and raises the unique violation naming the original constraint,
  so the store reports the same ``AlreadyExists`` as on the plain layout.

:func:`apply_partitions` also creates the months ahead (at each open and in the
``partitions`` maintenance task) and a partition for each month that has rows
waiting in the default partition, moving them in. Retention drops whole
partitions: a purge or delete under a bound drops the partitions wholly under it
and deletes the rest row by row (:func:`drop_before`).

Frozen: the partition naming scheme is written out here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from clonestore import ConfigurationError

__all__ = [
    "AHEAD",
    "Partition",
    "apply_partitions",
    "convert",
    "drop_before",
    "ensure_partitions",
    "partitions",
    "stranded_months",
]

log = logging.getLogger("clonestore.postgresql")

#: Months created ahead of the current one.
AHEAD: Final = 3
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS: Final = ("timestamptz", "micros")

Execute = Callable[[str, Any, int], Any]
_ONE, _ALL, _NONE = 1, 2, 4  # the SQL backend's fetch modes (ONE, ALL, NONE)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _exists(execute: Execute, name: str) -> bool:
    return execute("SELECT to_regclass(%s) IS NOT NULL", (name,), _ONE)[0] is True


def is_partitioned(execute: Execute, table: str) -> bool:
    """Whether ``table`` is a partitioned table."""
    row = execute("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(%s)", (table,), _ONE)
    return row is not None and row[0] == "p"


# ------------------------------------------------------------------------------ months


def _month(at: datetime) -> tuple[int, int]:
    at = at.astimezone(UTC)
    return at.year, at.month


def _next(month: tuple[int, int], by: int = 1) -> tuple[int, int]:
    index = month[0] * 12 + month[1] - 1 + by
    return index // 12, index % 12 + 1


def _start(month: tuple[int, int]) -> datetime:
    return datetime(month[0], month[1], 1, tzinfo=UTC)


def _value(at: datetime, unit: str) -> Any:
    """``at`` as a value of a column of ``unit``."""
    if unit == "micros":
        return (at - _EPOCH) // timedelta(microseconds=1)
    return at


def _instant(value: Any, unit: str) -> datetime:
    if unit == "micros":
        return _EPOCH + timedelta(microseconds=int(value))
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


class Partition:
    """One month's partition of a table: its name and bounds (``[low, high)``)."""

    def __init__(self, table: str, month: tuple[int, int]) -> None:
        self.table = table
        self.month = month
        self.name = f"{table}_p{month[0]:04d}{month[1]:02d}"
        self.low = _start(month)
        self.high = _start(_next(month))

    def bounds(self, unit: str) -> tuple[Any, Any]:
        """The bounds as values of the partition column."""
        return _value(self.low, unit), _value(self.high, unit)


def _literal(value: Any) -> str:
    """A bound (an int, or an aware datetime) as an SQL literal."""
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    return str(int(value))


def _default(table: str) -> str:
    return f"{table}_pdefault"


def partitions(execute: Execute, table: str) -> list[Partition]:
    """The monthly partitions of ``table``, oldest first (the default one aside)."""
    names = execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)",
        (table,),
        _ALL,
    )
    prefix = f"{table}_p"
    found = []
    for (name,) in names:
        digits = name[len(prefix) :]
        if name.startswith(prefix) and len(digits) == 6 and digits.isdigit():
            found.append(Partition(table, (int(digits[:4]), int(digits[4:]))))
    return sorted(found, key=lambda p: p.month)


def ensure_partitions(
    execute: Execute, table: str, column: str, unit: str, first: tuple[int, int],
    last: tuple[int, int],
) -> list[str]:  # fmt: skip
    """Create the missing monthly partitions from ``first`` to ``last`` (months), in
    the calling transaction; rows of the default partition in a new month move into
    it. The names created."""
    have = {p.month for p in partitions(execute, table)}
    default = _default(table)
    created = []
    month = first
    while month <= last:
        if month not in have:
            part = Partition(table, month)
            low, high = part.bounds(unit)
            # Bound as literals: DDL takes no parameters on a server-side-binding driver.
            bounds = f"FOR VALUES FROM ({_literal(low)}) TO ({_literal(high)})"
            stranded = execute(
                f"SELECT 1 FROM {_quote(default)} WHERE {_quote(column)} >= %s "
                f"AND {_quote(column)} < %s LIMIT 1",
                (low, high),
                _ONE,
            )
            if stranded is None:
                execute(
                    f"CREATE TABLE {_quote(part.name)} PARTITION OF {_quote(table)} {bounds}",
                    (),
                    _NONE,
                )
            else:  # the default partition holds rows of this month: they move in
                execute(f"ALTER TABLE {_quote(table)} DETACH PARTITION {_quote(default)}", (),
                        _NONE)  # fmt: skip
                execute(
                    f"CREATE TABLE {_quote(part.name)} PARTITION OF {_quote(table)} {bounds}",
                    (),
                    _NONE,
                )
                where = f"{_quote(column)} >= %s AND {_quote(column)} < %s"
                execute(
                    f"INSERT INTO {_quote(part.name)} SELECT * FROM {_quote(default)} "
                    f"WHERE {where}",
                    (low, high),
                    _NONE,
                )
                execute(f"DELETE FROM {_quote(default)} WHERE {where}", (low, high), _NONE)
                execute(
                    f"ALTER TABLE {_quote(table)} ATTACH PARTITION {_quote(default)} DEFAULT",
                    (),
                    _NONE,
                )
            created.append(part.name)
        month = _next(month)
    return created


# -------------------------------------------------------------------------- uniqueness


def unique_trigger(table: str, keys: list[tuple[str, list[str]]]) -> str:
    """DDL of the trigger keeping each ``(constraint, columns)`` of ``keys`` unique over
    every partition (each check under an advisory lock on the key's value)."""
    checks = []
    for constraint, columns in keys:
        present = " AND ".join(f"NEW.{_quote(c)} IS NOT NULL" for c in columns)
        same = " AND ".join(f"NEW.{_quote(c)} IS NOT DISTINCT FROM OLD.{_quote(c)}"
                            for c in columns)  # fmt: skip
        key = " || chr(31) || ".join(f"NEW.{_quote(c)}::text" for c in columns)
        match = " AND ".join(f"{_quote(c)} = NEW.{_quote(c)}" for c in columns)
        checks.append(f"""
  IF {present} AND NOT (TG_OP = 'UPDATE' AND {same}) THEN
    PERFORM pg_advisory_xact_lock(hashtextextended('{table}.{constraint}:' || {key}, 0));
    IF EXISTS (SELECT 1 FROM {_quote(table)} WHERE {match}) THEN
      RAISE EXCEPTION 'duplicate key value violates unique constraint "{constraint}"'
        USING ERRCODE = 'unique_violation', CONSTRAINT = '{constraint}', TABLE = '{table}';
    END IF;
  END IF;""")
    function = f"clonestore_unique_{table}"
    columns = sorted({c for _, cols in keys for c in cols})
    return f"""
CREATE OR REPLACE FUNCTION {_quote(function)}() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN{"".join(checks)}
  RETURN NEW;
END
$fn$;
DROP TRIGGER IF EXISTS {_quote(function)} ON {_quote(table)};
CREATE TRIGGER {_quote(function)} BEFORE INSERT OR UPDATE OF {", ".join(map(_quote, columns))}
  ON {_quote(table)} FOR EACH ROW EXECUTE FUNCTION {_quote(function)}();
"""


# -------------------------------------------------------------------------- conversion

_KEYS: Final = """
SELECT c.relname, i.indisprimary,
  ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(n, o)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o),
  i.indpred IS NOT NULL, EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
  AND k.contype IN ('p', 'u'))
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass(%s) AND i.indisunique ORDER BY NOT i.indisprimary, c.relname
"""
_INDEXES: Final = """
SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
WHERE i.indrelid = to_regclass(%s) AND NOT i.indisunique
"""
_FOREIGN: Final = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = to_regclass(%s) AND contype = 'f'
"""
_TRIGGERS: Final = """
SELECT pg_get_triggerdef(oid) FROM pg_trigger
WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal AND tgname <> %s
"""
_POLICIES: Final = """
SELECT policyname, permissive, roles::text[], cmd, qual, with_check FROM pg_policies
WHERE schemaname = current_schema() AND tablename = %s
"""


def convert(execute: Execute, table: str, column: str, unit: str, now: datetime) -> list[str]:
    """Make ``table`` range-partitioned by month on ``column`` (run in one
    transaction); what was done (nothing when it is partitioned already)."""
    if is_partitioned(execute, table):
        return []
    referenced = execute(
        "SELECT conname FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass(%s)",
        (table,),
        _ALL,
    )
    if referenced:
        raise ConfigurationError(
            f"{table} cannot be partitioned: foreign keys point at it "
            f"({', '.join(r[0] for r in referenced)})"
        )
    keys = [
        (name, primary, list(cols), partial, constraint)
        for name, primary, cols, partial, constraint in execute(_KEYS, (table,), _ALL)
    ]
    if any(partial for *_, partial, _ in keys):
        raise ConfigurationError(f"{table} cannot be partitioned: it has a partial unique index")
    indexes = [r[0] for r in execute(_INDEXES, (table,), _ALL)]
    foreign = execute(_FOREIGN, (table,), _ALL)
    triggers = [r[0] for r in execute(_TRIGGERS, (table, f"clonestore_unique_{table}"), _ALL)]
    security = execute(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = to_regclass(%s)",
        (table,),
        _ONE,
    )
    policies = execute(_POLICIES, (table,), _ALL)
    old = f"{table}__unpartitioned"
    execute(f"ALTER TABLE {_quote(table)} RENAME TO {_quote(old)}", (), _NONE)
    execute(
        f"CREATE TABLE {_quote(table)} (LIKE {_quote(old)} INCLUDING DEFAULTS INCLUDING "
        f"CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE ({_quote(column)})",
        (),
        _NONE,
    )
    execute(f"CREATE TABLE {_quote(_default(table))} PARTITION OF {_quote(table)} DEFAULT", (),
            _NONE)  # fmt: skip
    oldest = execute(f"SELECT min({_quote(column)}) FROM {_quote(old)}", (), _ONE)[0]
    first = _month(now if oldest is None else min(_instant(oldest, unit), now))
    made = ensure_partitions(execute, table, column, unit, first, _next(_month(now), AHEAD))
    execute(f"INSERT INTO {_quote(table)} SELECT * FROM {_quote(old)}", (), _NONE)
    execute(f"DROP TABLE {_quote(old)}", (), _NONE)
    unique: list[tuple[str, list[str]]] = []
    for name, primary, cols, _, constraint in keys:
        with_column = ", ".join(_quote(c) for c in [*cols, *([] if column in cols else [column])])
        if primary:
            execute(f"ALTER TABLE {_quote(table)} ADD CONSTRAINT {_quote(name)} PRIMARY KEY "
                    f"({with_column})", (), _NONE)  # fmt: skip
        elif constraint:
            execute(f"ALTER TABLE {_quote(table)} ADD CONSTRAINT {_quote(name)} UNIQUE "
                    f"({with_column})", (), _NONE)  # fmt: skip
        else:
            execute(f"CREATE UNIQUE INDEX {_quote(name)} ON {_quote(table)} ({with_column})", (),
                    _NONE)  # fmt: skip
        if column not in cols:
            unique.append((name, cols))
    for ddl in indexes:
        execute(ddl, None, _NONE)
    for name, definition in foreign:
        execute(f"ALTER TABLE {_quote(table)} ADD CONSTRAINT {_quote(name)} {definition}", None,
                _NONE)  # fmt: skip
    for ddl in triggers:
        execute(ddl, None, _NONE)
    if unique:
        execute(unique_trigger(table, unique), None, _NONE)
    if security is not None and security[0]:
        execute(f"ALTER TABLE {_quote(table)} ENABLE ROW LEVEL SECURITY", (), _NONE)
    if security is not None and security[1]:
        execute(f"ALTER TABLE {_quote(table)} FORCE ROW LEVEL SECURITY", (), _NONE)
    for name, permissive, roles, cmd, qual, check in policies:
        execute(
            f"CREATE POLICY {_quote(name)} ON {_quote(table)} AS {permissive} FOR {cmd} TO "
            + ", ".join(r if r == "public" else _quote(r) for r in roles)
            + (f" USING ({qual})" if qual is not None else "")
            + (f" WITH CHECK ({check})" if check is not None else ""),
            None,
            _NONE,
        )
    # Fresh partitions have no statistics: without them the planner misjudges every
    # partition's scan until autovacuum gets round to them.
    execute(f"ANALYZE {_quote(table)}", (), _NONE)
    return [f"{table}: partitioned by month on {column} ({len(made)} partitions)"]


def stranded_months(execute: Execute, table: str, column: str, unit: str) -> list[tuple[int, int]]:
    """The months of the rows in ``table``'s default partition (rows written for a
    month that had no partition yet): each gets its partition, and its rows move in."""
    value = _quote(column)
    if unit == "micros":
        value = f"to_timestamp({value} / 1000000.0)"
    rows = execute(
        f"SELECT DISTINCT date_trunc('month', {value} AT TIME ZONE 'UTC') "
        f"FROM {_quote(_default(table))}",
        (),
        _ALL,
    )
    return sorted((at.year, at.month) for (at,) in rows)


def apply_partitions(
    execute: Execute,
    transaction: Callable[[], Any],
    tables: Mapping[str, tuple[str, str]],
    now: datetime,
) -> list[str]:
    """Convert each of ``tables`` (name -> partition column and its unit,
    ``timestamptz`` or ``micros``) not partitioned yet, and create the months ahead
    and those of rows waiting in the default partition (each table in its own
    transaction); what was done."""
    done: list[str] = []
    for table, (column, unit) in sorted(tables.items()):
        if not _exists(execute, table):
            continue
        with transaction():
            if not is_partitioned(execute, table):
                done += convert(execute, table, column, unit, now)
            else:
                made = []
                for month in stranded_months(execute, table, column, unit):
                    made += ensure_partitions(execute, table, column, unit, month, month)
                made += ensure_partitions(
                    execute, table, column, unit, _month(now), _next(_month(now), AHEAD)
                )
                done += [f"{table}: partition {name} created" for name in made]
    for change in done:
        log.info("layout partitioned: %s", change)
    return done


# --------------------------------------------------------------------------- retention


def whole_bound(execute: Execute, table: str, unit: str, before: Any) -> Any | None:
    """The highest partition boundary at or under ``before`` below which every
    partition is a month's (so a removal under it drops whole partitions); None if
    no partition lies wholly under ``before``."""
    best = None
    for part in partitions(execute, table):
        high = part.bounds(unit)[1]
        if high <= before:
            best = high
    return best


def drop_before(execute: Execute, table: str, column: str, unit: str, before: Any) -> int:
    """Remove the rows of ``table`` with ``column < before`` in the calling
    transaction: the monthly partitions wholly under ``before`` are dropped (their
    rows counted first, under an exclusive lock), the rest deleted; how many rows."""
    removed = 0
    for part in partitions(execute, table):
        if part.bounds(unit)[1] > before:
            continue
        execute(f"LOCK TABLE {_quote(part.name)} IN ACCESS EXCLUSIVE MODE", (), _NONE)
        removed += int(execute(f"SELECT count(*) FROM {_quote(part.name)}", (), _ONE)[0])
        execute(f"DROP TABLE {_quote(part.name)}", (), _NONE)
    return removed
