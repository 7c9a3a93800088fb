"""Running the same operation on several stores and comparing outcomes.

The machinery of the differential properties (:mod:`clonestore.testing.properties`):
:class:`Stores` drives several stores in lockstep, the first one (``memory://``)
being the oracle. Every other store must return the same value (compared in
the canonical, type-preserving form of :func:`canon`) or raise the same error
class, and hold the same rows in every table afterwards.

The kit runs it with two stores, ``{"memory": "memory://", "target": URL}``;
clonestore's own tests with memory, SQLite and PostgreSQL at once. It does not
need hypothesis.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

import clonestore
from clonestore.query import TRUE, OrderBy
from clonestore.schema import removal_order
from clonestore.spi import TableSpec
from clonestore.testing import FrozenClock
from clonestore.testing.wiping import empty_table

__all__ = ["ResettableIds", "Stores", "canon", "canon_row"]


def canon(value: Any) -> Any:
    """A form of ``value`` that is equal only for values of the same type and content
    (``1``, ``1.0`` and ``True`` differ, ``0.0`` and ``-0.0`` differ, and mappings holding
    the same items in another key order differ: JSON objects keep their key order)."""
    if attrs.has(type(value)):
        return (
            type(value).__name__,
            tuple((f.name, canon(getattr(value, f.name))) for f in attrs.fields(type(value))),
        )
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    if isinstance(value, datetime):
        return ("datetime", value.isoformat())
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(canon(v) for v in value))
    if isinstance(value, Mapping):
        return ("map", tuple((str(k), canon(v)) for k, v in value.items()))
    return (type(value).__name__, value)


def canon_row(row: Mapping[str, Any]) -> Any:
    """:func:`canon` of a row, whose columns may come in any order (their values may not)."""
    return ("row", tuple(sorted((name, canon(value)) for name, value in row.items())))


class ResettableIds:
    """Sequential UUIDs that every store hands out in the same order, reset per example."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start again from ``...0001``."""
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"00000000-0000-4000-8000-{next(self._counter):012x}"


class Stores:
    """Several stores driven in lockstep; the first one is the oracle."""

    def __init__(
        self,
        urls: Mapping[str, str],
        clock: FrozenClock | None = None,
        empty: Callable[[clonestore.Store, TableSpec], None] | None = None,
        *,
        asynchronous: Collection[str] = (),
        plugins: Sequence[object] = (),
    ) -> None:
        """Open a store per URL, each with ``plugins``; those named in ``asynchronous``
        through :func:`clonestore.open_async` (each call awaited on an event loop, see
        :mod:`clonestore.testing.blocking`)."""
        self.clock = clock if clock is not None else FrozenClock()
        #: How ``reset`` empties a table (the kit passes one that refuses others' rows).
        self._empty = empty or (lambda store, spec: empty_table(store.backend, spec))
        self.ids = {name: ResettableIds() for name in urls}
        self.stores: dict[str, clonestore.Store] = {}
        try:
            for name, url in urls.items():
                if name in asynchronous:
                    from clonestore.testing.blocking import open_blocking

                    opened: Any = open_blocking(
                        url, clock=self.clock, id_factory=self.ids[name], plugins=list(plugins)
                    )
                    self.stores[name] = opened
                else:
                    self.stores[name] = clonestore.open(
                        url, clock=self.clock, id_factory=self.ids[name], plugins=list(plugins)
                    )
        except BaseException:
            self.close()
            raise

    def reset(self) -> None:
        """Empty every table and restart ids, before each example."""
        for name, store in self.stores.items():
            for spec in removal_order(store.tables.values()):  # referencing rows first
                self._empty(store, spec)
            self.ids[name].reset()

    def close(self) -> None:
        """Close every store."""
        for store in self.stores.values():
            store.close()

    def __iter__(self) -> Iterator[tuple[str, clonestore.Store]]:
        return iter(self.stores.items())

    def apply(self, fn: Callable[[clonestore.Store], Any]) -> Any:
        """Run ``fn`` on every store and assert the same value or the same error class
        everywhere; return the oracle's result (None when it raised)."""
        outcomes: dict[str, tuple[str, Any]] = {}
        raw: Any = None
        for index, (name, store) in enumerate(self.stores.items()):
            try:
                value = fn(store)
                outcomes[name] = ("ok", canon(value))
                if index == 0:
                    raw = value
            except clonestore.ClonestoreError as exc:
                outcomes[name] = ("error", type(exc).__name__)
        oracle_name, oracle = next(iter(outcomes.items()))
        for name, outcome in outcomes.items():
            assert outcome == oracle, (
                f"{name} disagrees with {oracle_name}:\n"
                f"  {oracle_name}: {oracle}\n  {name}: {outcome}"
            )
        return raw

    def assert_same_tables(self, random: Mapping[str, Collection[str]] | None = None) -> None:
        """Every table holds exactly the same rows on every store.

        :param random: columns left out, by table: values drawn at random by design
            (the audit's salts and what they enter), which no two stores share.
        """
        random = random or {}
        snapshots: dict[str, dict[str, Any]] = {}
        for name, store in self.stores.items():
            snapshots[name] = {}
            for spec in store.tables.values():
                rows = store.backend.select(spec, TRUE, [OrderBy("id")])
                left_out = random.get(spec.name, ())
                snapshots[name][spec.name] = [
                    canon_row({k: v for k, v in r.items() if k not in left_out}) for r in rows
                ]
        oracle_name, oracle = next(iter(snapshots.items()))
        for name, snapshot in snapshots.items():
            for table, rows in oracle.items():
                assert snapshot[table] == rows, (
                    f"table {table}: {name} differs from {oracle_name}:\n"
                    f"  {oracle_name}: {rows}\n  {name}: {snapshot[table]}"
                )
