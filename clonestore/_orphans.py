"""Rows pointing at nothing (orphans), found through the SPI on any backend: what
``clonestore orphans`` lists, and what must go before foreign keys can be added to an
older database (core migration 0008)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs

from clonestore.query import And, Cond, Expr, OrderBy
from clonestore.schema import ForeignKey, TableSpec, removal_order
from clonestore.spi import PRIMARY_KEY, Backend, Row

__all__ = ["Orphans", "find_orphans"]

#: Rows read at a time.
_BATCH: Final = 1000


@attrs.frozen
class Orphans:
    """The rows of ``table`` whose ``columns`` name no row of ``references``."""

    table: str
    columns: tuple[str, ...]
    references: str
    on_delete: str
    #: ``{"id": ..., <column>: <value it names>}`` per orphan, in id order.
    rows: list[dict[str, Any]]

    @property
    def relation(self) -> str:
        """``"turns.session_id"``."""
        return f"{self.table}.{'.'.join(self.columns)}"


def _key_where(columns: tuple[str, ...], values: tuple[Any, ...]) -> Expr:
    conds = tuple(Cond(c, "eq", v) for c, v in zip(columns, values, strict=True))
    return conds[0] if len(conds) == 1 else And(conds)


def _rows_pointing(backend: Backend, spec: TableSpec, fk: ForeignKey) -> Iterator[list[Row]]:
    """The rows of ``spec`` whose key columns are all set, in batches, in id order."""
    set_ = [Cond(c, "isnull", False) for c in fk.columns]
    after: str | None = None
    while True:
        conds = [*set_, *([Cond("id", "gt", after)] if after is not None else [])]
        where = conds[0] if len(conds) == 1 else And(tuple(conds))
        batch = backend.select(spec, where, (OrderBy("id"),), _BATCH)
        if not batch:
            return
        yield batch
        after = batch[-1]["id"]


def _missing(backend: Backend, parent: TableSpec, fk: ForeignKey, rows: list[Row]) -> list[Row]:
    keys = {tuple(row[c] for c in fk.columns) for row in rows}
    if fk.referenced == PRIMARY_KEY:
        wanted = [key[0] for key in keys]
        found = {
            (row["id"],)
            for row in backend.select(parent, Cond("id", "in", wanted), (OrderBy("id"),))
        }
    else:
        found = {key for key in keys if backend.select(parent, _key_where(fk.referenced, key))}
    return [row for row in rows if tuple(row[c] for c in fk.columns) not in found]


def find_orphans(backend: Backend, tables: Mapping[str, TableSpec]) -> list[Orphans]:
    """For each foreign key of ``tables`` (referencing tables first), the rows that point
    at nothing. Reads every referencing row once, in batches."""
    out: list[Orphans] = []
    for spec in removal_order(tables.values()):
        for fk in spec.foreign_keys:
            parent = tables.get(fk.references)
            orphans: list[dict[str, Any]] = []
            for batch in _rows_pointing(backend, spec, fk):
                missing = batch if parent is None else _missing(backend, parent, fk, batch)
                orphans += [{"id": r["id"], **{c: r[c] for c in fk.columns}} for r in missing]
            out.append(Orphans(spec.name, fk.columns, fk.references, fk.on_delete, orphans))
    return out
