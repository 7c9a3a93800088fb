"""Which unique constraint a failed write violated, when the engine does not say.

SQLite tells a duplicate primary key from a duplicate unique value by its result
code, and MariaDB a duplicate by its error number, but both name the violated key
only in the message's text, next to the value. The shared layer never reads that
text: on the error path only, after the failed statement, it looks for the
constraint (the primary key first, then ``TableSpec.unique`` in order) under which
a written row would hold the key of a live row in the constraint's scope, or of
another written row. A table with no unique constraint but its primary key needs
no look-up.

The look-up only reads, on the caller's connection: SQLite and MariaDB roll back
the failed statement alone and leave the caller's transaction usable, and it sees
what the caller's transaction sees (MariaDB's sessions read committed). A look-up
that fails, or finds nothing (a row removed meanwhile), leaves ``columns`` empty.
PostgreSQL needs none: it names the constraint (:meth:`Dialect.duplicate_key`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Protocol

from clonestore.query import And, Cond, Expr
from clonestore.spi import PRIMARY_KEY, Row, TableSpec, Unique

__all__ = ["Written", "in_scope", "key_where", "scope_of", "violated"]

#: One row a failed write would have stored, and the id of the stored row it replaces
#: (an update's) or None (an insert's): that row never clashes with itself.
Written = tuple[Row, str | None]

#: Values of a key's first column per look-up statement.
_CHUNK: Final = 500


class _Reader(Protocol):
    def project(self, table: TableSpec, where: Expr, names: Sequence[str]) -> list[Row]: ...


def scope_of(spec: TableSpec, unique: Unique) -> list[Cond]:
    """The conditions of the rows ``unique`` holds among: its ``when``, and live rows on a
    table with soft delete (the primary key holds among all rows)."""
    scope = [Cond(name, "isnull", True) if value is None else Cond(name, "eq", value)
             for name, value in unique.when]  # fmt: skip
    if spec.soft_delete and unique.columns != PRIMARY_KEY:
        scope.append(Cond("deleted_at", "isnull", True))
    return scope


def in_scope(scope: Sequence[Cond], row: Row) -> bool:
    """Whether ``row`` meets every condition of a constraint's scope (:func:`scope_of`)."""
    return all(
        row[c.column] is None if c.op == "isnull" else bool(row[c.column] == c.value)
        for c in scope
    )


def key_where(spec: TableSpec, unique: Unique, row: Row) -> Expr | None:
    """The stored row ``row`` would clash with under ``unique``: its key's values within
    the constraint's scope; None when ``row`` is outside the constraint (a NULL in its
    key, or outside its scope), where it clashes with no row."""
    scope = scope_of(spec, unique)
    keys = [row[name] for name in unique.columns]
    if any(value is None for value in keys) or not in_scope(scope, row):
        return None
    return And((*(Cond(n, "eq", v) for n, v in zip(unique.columns, keys, strict=True)), *scope))


def violated(
    backend: _Reader, spec: TableSpec, written: Callable[[], Iterable[Written]]
) -> tuple[str, ...]:
    """The columns of the first of ``spec``'s unique constraints (the primary key first)
    that the rows of ``written()`` clash on, or () when none does."""
    uniques = [Unique(PRIMARY_KEY), *(u for u in spec.unique if u.columns != PRIMARY_KEY)]
    if len(uniques) == 1:
        return PRIMARY_KEY
    try:
        rows = list(written())
        for unique in uniques:
            if _clashes(backend, spec, unique, rows):
                return unique.columns
    except Exception:
        # A failed look-up never hides the write's own error (on PostgreSQL, say, whose
        # failed statement aborted the transaction).
        pass
    return ()


def _clashes(backend: _Reader, spec: TableSpec, unique: Unique, written: list[Written]) -> bool:
    columns = unique.columns
    scope = scope_of(spec, unique)
    keyed: list[tuple[tuple[Any, ...], str | None]] = []
    for row, own in written:
        key = tuple(row[name] for name in columns)
        if None in key or not in_scope(scope, row):
            continue  # NULLs never clash; outside the scope the constraint does not hold
        keyed.append((key, own))
    if not keyed:
        return False
    if _among_themselves(keyed):
        return True
    firsts = list(dict.fromkeys(key[0] for key, _ in keyed))
    stored: dict[tuple[Any, ...], set[str]] = {}
    for start in range(0, len(firsts), _CHUNK):
        where = And((Cond(columns[0], "in", tuple(firsts[start : start + _CHUNK])), *scope))
        for found in backend.project(spec, where, (*columns, "id")):
            stored.setdefault(tuple(found[name] for name in columns), set()).add(found["id"])
    return any(ids - {own} for key, own in keyed if (ids := stored.get(key)))


def _among_themselves(keyed: list[tuple[tuple[Any, ...], str | None]]) -> bool:
    """Whether two written rows hold one key (keys are hashable: the kinds a unique
    constraint takes are ids, keys, text, numbers, booleans and datetimes)."""
    return len({key for key, _ in keyed}) < len(keyed)
