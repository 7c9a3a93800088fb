"""One memory:// table: rows by id and the indexes over them (private to the package)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from clonestore import ConfigurationError
from clonestore.query import And, Cond, Expr, Or, OrderBy
from clonestore.spi import Row, TableSpec, Unique
from clonestore.spi_reference import copy_value, matches, sort_rows
from clonestore_memory._indexes import HashIndex, OrderedIndex, RowIndex, UniqueIndex, sort_key
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
        self.flat = tuple(c.name for c in spec.columns if c.kind in ("list", "vector"))
        self.nested = tuple(c.name for c in spec.columns if c.kind == "json")
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
        # Ordered indexes for keyset reads: the spec's indexes that end with ``id``
        # ((created_at, id), (user_id, created_at, id)...).
        self.ordered: tuple[OrderedIndex, ...] = tuple(
            OrderedIndex(ix, spec.soft_delete)
            for ix in spec.indexes
            if len(ix.columns) > 1 and ix.columns[-1] == "id"
        )
        #: Text search's tokens of rows, by searched fields and id: (the row, its tokens).
        #: A row leaving or replaced (a write, a rollback, an erasure) leaves it too.
        self.text_tokens: dict[tuple[str, ...], dict[str, tuple[object, list[list[str]]]]] = {}
        self.indexes: tuple[RowIndex, ...] = (
            *self.unique,
            *self.lookup.values(),
            *self.vectors.values(),
            *self.ordered,
        )

    def copy_in(self, row: Mapping[str, Any]) -> Row:
        """A copy to store: callers keep no handle on stored lists and dicts."""
        return self._copy(row)

    def copy_out(self, row: Row) -> Row:
        """A copy to return: callers get no handle on stored lists and dicts."""
        return self._copy(row)

    def column_out(self, rows: Sequence[Row], name: str) -> list[Any]:
        """The values of column ``name`` of stored ``rows``, as :meth:`copy_out` gives them."""
        values = list(map(itemgetter(name), rows))
        if name in self.flat:
            return [None if value is None else value[:] for value in values]
        if name in self.nested:
            return list(map(copy_value, values))
        return values

    def _copy(self, row: Mapping[str, Any]) -> Row:
        # List and vector items are text and floats (the core checked them): a slice
        # copies them in C. Only JSON values nest, and need copy_value's walk.
        out = dict(row)
        for name in self.flat:
            value = out[name]
            if value is not None:
                out[name] = value[:]
        for name in self.nested:
            out[name] = copy_value(out[name])
        return out

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
        for tokens in self.text_tokens.values():
            tokens.pop(row["id"], None)
        for index in self.indexes:
            index.discard(row)

    def relink(self, before: Row, row: Row) -> None:
        """``row`` replaces ``before`` (same id): each index moves it only if its key moved."""
        self.rows[row["id"]] = row
        for tokens in self.text_tokens.values():
            tokens.pop(row["id"], None)
        for index in self.indexes:
            replace = getattr(index, "replace", None)
            if replace is not None:
                replace(before, row)
            else:
                index.discard(before)
                index.add(row)

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

    def read_ordered(
        self, where: Expr, order: Sequence[OrderBy], end: int | None
    ) -> list[Row] | None:
        """The first ``end`` matching rows in ``order`` read from an ordered index, or
        None when no index serves the read (then the caller filters and sorts).

        An index serves it when its columns are equality-bound columns of ``where``
        followed by ``order``'s columns, all in one direction; a live-rows index
        only when ``where`` asks for live rows. A range bound on the first ordered
        column (``created_at >= v``, as keyset cursors carry) is where reading starts.
        """
        if end is None:
            return None
        conds = _conjuncts(where)
        equal: dict[str, Any] = {}
        bounds: dict[str, tuple[str, Any]] = {}
        live = False
        for cond in conds:
            if not isinstance(cond, Cond):
                continue
            if cond.op == "eq" and not self.spec.column(cond.column).casefold:
                equal[cond.column] = cond.value
            elif cond.op in ("gte", "gt", "lte", "lt"):
                bounds[cond.column] = (cond.op, cond.value)
            elif cond.column == "deleted_at" and cond.op == "isnull" and cond.value is True:
                live = True
        names = tuple(o.column for o in order)
        desc = order[0].desc
        for index in self.ordered:
            if index.live and not live:
                continue
            prefix = index.columns[: len(index.columns) - len(names)]
            if index.columns[len(prefix) :] != names or any(c not in equal for c in prefix):
                continue
            start = [sort_key(equal[c]) for c in prefix]
            keyset = _keyset_values(conds, order)
            op, value = bounds.get(names[0], (None, None))
            after: list[Any] | None = None
            if keyset is not None:
                # Read on from the cursor's own key. Every row past it satisfies the
                # continuation (and its range bound), so only the rest of ``where`` is
                # evaluated per row.
                after, term = keyset
                start += [sort_key(v) for v in after]
                bound = Cond(names[0], "lte" if desc else "gte", after[0])
                rest = [c for c in conds if c is not term and c != bound]
                where = And(tuple(rest)) if len(rest) != 1 else rest[0]
            elif op in (("lte", "lt") if desc else ("gte", "gt")):
                start.append(sort_key(value))
            # What every row read satisfies needs no check per row: the live rows of a
            # live index, and the prefix's equalities (reading stops past the prefix).
            rest = [
                c
                for c in _conjuncts(where)
                if not (
                    isinstance(c, Cond)
                    and (
                        (index.live and c.column == "deleted_at" and c.op == "isnull"
                         and c.value is True)
                        or (c.op == "eq" and c.column in prefix and equal[c.column] == c.value)
                    )
                )
            ]  # fmt: skip
            where = And(tuple(rest)) if len(rest) != 1 else rest[0]
            return self._read(index, start, where, order, prefix, equal, end, after)
        return None

    def _read(
        self,
        index: OrderedIndex,
        start: list[Any],
        where: Expr,
        order: Sequence[OrderBy],
        prefix: Sequence[str],
        equal: Mapping[str, Any],
        end: int,
        after: Sequence[Any] | None = None,
    ) -> list[Row]:
        """Read ``index`` in the first ordered column's direction. When later columns
        go the other way (``-created_at`` then ``id``), rows that tie on the first
        column are sorted among themselves before they count. With ``after`` (a
        cursor's values) the row holding exactly those values is skipped."""
        one_way = len({o.desc for o in order}) == 1
        first = order[0].column
        names = [o.column for o in order]
        rows = self.rows
        out: list[Row] = []
        ties: list[Row] = []
        check = not (type(where) is And and not where.items)  # an empty And holds always
        for id in index.ids(start, order[0].desc):
            row = rows[id]
            if prefix and any(row[c] != equal[c] for c in prefix):
                break  # past the prefix: no more rows of it
            if after is not None:
                if [row[c] for c in names] == list(after):
                    continue  # the cursor's row; every later one is past it
                after = None
            if check and not matches(where, row):
                continue
            if one_way:
                out.append(row)
                if len(out) >= end:
                    break
                continue
            if ties and row[first] != ties[0][first]:
                out += sort_rows(ties, order)
                ties = []
                if len(out) >= end:
                    break
            ties.append(row)
        if ties:
            out += sort_rows(ties, order)
        return out[:end]


def _conjuncts(expr: Expr) -> list[Expr]:
    """The terms every matching row satisfies: ``expr``'s ``And`` items, nested ones too."""
    if not isinstance(expr, And):
        return [expr]
    return [term for item in expr.items for term in _conjuncts(item)]


def _keyset_values(
    conds: Sequence[Expr], order: Sequence[OrderBy]
) -> tuple[list[Any], Expr] | None:
    """The cursor's values when ``conds`` hold a keyset continuation in ``order`` over
    columns that cannot be NULL, all one way (``c1 > v1 OR (c1 = v1 AND (c2 > v2 ...))``,
    as :func:`clonestore.query.keyset_after` writes it), with that term; None otherwise.

    Reading from the cursor's key instead of from ``c1 >= v1`` skips the rows that tie
    with the cursor on ``c1`` and come before it."""
    if len({o.desc for o in order}) != 1:
        return None
    strictly = "lt" if order[0].desc else "gt"
    for cond in conds:
        values: list[Any] = []
        expr: Expr = cond
        for position, key in enumerate(order):
            last = position == len(order) - 1
            if last:
                if isinstance(expr, Cond) and expr.column == key.column and expr.op == strictly:
                    values.append(expr.value)
                break
            if not (isinstance(expr, Or) and len(expr.items) == 2):
                break
            beyond, same = expr.items
            if not (
                isinstance(beyond, Cond)
                and beyond.column == key.column
                and beyond.op == strictly
                and isinstance(same, And)
                and len(same.items) == 2
                and isinstance(same.items[0], Cond)
                and same.items[0].column == key.column
                and same.items[0].op == "eq"
                and same.items[0].value == beyond.value
            ):
                break
            values.append(beyond.value)
            expr = same.items[1]
        if len(values) == len(order):
            return values, cond
    return None
