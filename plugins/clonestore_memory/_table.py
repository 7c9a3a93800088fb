"""One memory:// table: rows by id and the indexes over them (private to the package)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clonestore import ConfigurationError
from clonestore.spi import And, Cond, Expr, Row, TableSpec, Unique, copy_row, matches
from clonestore_memory._indexes import HashIndex, RowIndex, UniqueIndex
from clonestore_memory._vectors import VectorIndex

__all__ = ["Table"]


class Table:
    """Rows by id, with an index per unique constraint and per indexed column.

    ``indexes`` is every index kept current as rows come and go; the typed
    attributes (``unique``, ``lookup``) are the same objects, by purpose.
    """

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.rows: dict[str, Row] = {}
        self.mutable = spec.mutable_columns
        self.unique: tuple[UniqueIndex, ...] = tuple(
            UniqueIndex(u, spec.soft_delete) for u in spec.unique
        )
        # Hash indexes for equality lookups on the leading column of every index
        # and unique constraint (email_key, user_id, session_id...).
        leading = [ix.columns[0] for ix in spec.indexes] + [u.columns[0] for u in spec.unique]
        self.lookup: dict[str, HashIndex] = {n: HashIndex(n) for n in dict.fromkeys(leading)}
        partition = "user_id" if "user_id" in spec.by_name else None
        #: A vector index per vector column, by owner and dimension.
        self.vectors: dict[str, VectorIndex] = {
            c.name: VectorIndex(c.name, partition) for c in spec.columns if c.kind == "vector"
        }
        self.indexes: tuple[RowIndex, ...] = (
            *self.unique,
            *self.lookup.values(),
            *self.vectors.values(),
        )

    def copy_in(self, row: Mapping[str, Any]) -> Row:
        """A copy to store: callers keep no handle on stored lists and dicts."""
        return copy_row(row, self.mutable)

    def copy_out(self, row: Row) -> Row:
        """A copy to return: callers get no handle on stored lists and dicts."""
        return copy_row(row, self.mutable)

    def conflicts(self, row: Row) -> Unique | None:
        """The unique constraint another row already holds ``row``'s key of, if any."""
        for index in self.unique:
            if index.clashes(row):
                return index.unique
        return None

    def find_unique(self, unique: Unique, row: Row) -> str | None:
        """The id of the row holding ``row``'s key under ``unique``, if any."""
        for index in self.unique:
            if index.unique == unique:
                return index.holder(row)
        raise ConfigurationError(f"{self.spec.name} has no unique constraint on {unique.columns}")

    def link(self, row: Row) -> None:
        self.rows[row["id"]] = row
        for index in self.indexes:
            index.add(row)

    def unlink(self, row: Row) -> None:
        del self.rows[row["id"]]
        for index in self.indexes:
            index.discard(row)

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
                    return [self.rows[i] for i in index.lookup(cond.value)]
        return list(self.rows.values())

    def matching(self, where: Expr) -> list[Row]:
        return [row for row in self.candidates(where) if matches(where, row)]
