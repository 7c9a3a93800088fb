"""The indexes a memory:// table keeps over its rows (private to the package).

Every index follows :class:`RowIndex`: the table tells it of each row linked
and unlinked (inserts, updates, deletes, and their undo), and the index
answers its own kind of question. A new kind of index (ordered, vector...)
is one more class here, built in :class:`clonestore_memory._table.Table`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Set
from typing import Any, Protocol

from sortedcontainers import SortedList

from clonestore.spi import Index, Row, Unique

__all__ = ["HashIndex", "OrderedIndex", "RowIndex", "UniqueIndex"]


class RowIndex(Protocol):
    """What the table keeps current in every index of its rows."""

    def add(self, row: Row) -> None:
        """``row`` is now stored (a new row, or the new version of one)."""

    def discard(self, row: Row) -> None:
        """``row`` is no longer stored (removed, or replaced by a new version)."""


class UniqueIndex:
    """One unique constraint: its key -> the id of the row holding it.

    Rows outside the constraint hold no key: soft-deleted rows, rows not
    matching ``when``, and rows with a NULL in the key.
    """

    def __init__(self, unique: Unique, soft_delete: bool) -> None:
        self.unique = unique
        self.soft_delete = soft_delete
        self.holders: dict[tuple[Any, ...], str] = {}

    def key(self, row: Row) -> tuple[Any, ...] | None:
        """The row's key under this constraint, or None when the constraint skips it."""
        if self.soft_delete and row["deleted_at"] is not None:
            return None
        for name, value in self.unique.when:
            if row[name] != value:
                return None
        key = tuple(row[c] for c in self.unique.columns)
        return None if None in key else key

    def holder(self, row: Row) -> str | None:
        """The id of the stored row holding ``row``'s key, if any."""
        key = self.key(row)
        return None if key is None else self.holders.get(key)

    def clashes(self, row: Row) -> bool:
        """Whether another row holds ``row``'s key."""
        holder = self.holder(row)
        return holder is not None and holder != row["id"]

    def add(self, row: Row) -> None:
        key = self.key(row)
        if key is not None:
            self.holders[key] = row["id"]

    def discard(self, row: Row) -> None:
        key = self.key(row)
        if key is not None and self.holders.get(key) == row["id"]:
            del self.holders[key]


class HashIndex:
    """Equality lookups on one column: value -> ids of the rows holding it."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.ids: dict[Any, set[str]] = {}

    def lookup(self, value: Any) -> Set[str]:
        """The ids of the rows whose column equals ``value``."""
        return self.ids.get(value, _NONE)

    def add(self, row: Row) -> None:
        self.ids.setdefault(row[self.column], set()).add(row["id"])

    def replace(self, before: Row, after: Row) -> None:
        old, new = before[self.column], after[self.column]
        if type(old) is not type(new) or old != new:
            self.discard(before)
            self.add(after)

    def discard(self, row: Row) -> None:
        value = row[self.column]
        ids = self.ids.get(value)
        if ids is not None:
            ids.discard(row["id"])
            if not ids:
                del self.ids[value]


_NONE: Set[str] = frozenset()


def sort_key(value: Any) -> tuple[Any, ...]:
    """A value's place in ascending order: NULL after every value, as :func:`sort_rows`."""
    return (True,) if value is None else (False, value)


class OrderedIndex:
    """Rows in the order of an index's columns (the last one ``id``, so keys are unique).

    A sorted list of keys: reading rows in order from a starting key costs
    O(log n) to find it plus the rows read, so a keyset page costs the same at
    any depth and at any table size. ``live`` indexes hold live rows only
    (``deleted_at IS NULL``), like the SQL backends' partial indexes.
    """

    def __init__(self, index: Index, soft_delete: bool) -> None:
        self.columns = index.columns
        self.live = index.live and soft_delete
        self.keys: SortedList = SortedList()

    def key(self, row: Row) -> tuple[Any, ...] | None:
        if self.live and row["deleted_at"] is not None:
            return None
        return tuple(sort_key(row[c]) for c in self.columns)

    def add(self, row: Row) -> None:
        key = self.key(row)
        if key is not None:
            self.keys.add(key)

    def discard(self, row: Row) -> None:
        key = self.key(row)
        if key is not None:
            self.keys.discard(key)

    def replace(self, before: Row, after: Row) -> None:
        old, new = self.key(before), self.key(after)
        if old != new:
            if old is not None:
                self.keys.discard(old)
            if new is not None:
                self.keys.add(new)

    def ids(self, start: Sequence[Any], desc: bool) -> Iterator[str]:
        """Ids in index order from the first key at or after ``start`` (a key prefix;
        descending: backwards from the last key at or before it)."""
        keys = self.keys
        if desc:
            # Every key with ``start`` as its prefix sorts before start + (greater than any value,)
            stop = keys.bisect_right((*start, (True, True)))
            for i in range(stop - 1, -1, -1):
                yield keys[i][-1][1]
        else:
            for key in keys.islice(keys.bisect_left(tuple(start))):
                yield key[-1][1]
