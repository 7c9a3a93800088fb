"""The kit empties only tables whose rows it made: it never destroys your data.

Each test starts on empty tables, so the kit deletes every row of a table
before its first use. Before it does that on a table for the first time in a
database, it looks for the table in its claim table, :data:`CLAIMS`
(``clonestore_kit_tables``):

* claimed: the rows are the kit's own, from an earlier run; they go;
* not claimed and empty: the kit claims it, then uses it;
* not claimed and holding rows: the rows are someone else's. The run stops
  with :class:`WipeRefused`, before anything is deleted, unless
  ``--clonestore-allow-wipe`` says the database is a throwaway one.

So point the kit at an empty database (or a throwaway copy). The kit's own
tables (``contract_*`` and ``clonestore_kit_tables``) stay in it afterwards.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Sequence
from typing import Final, cast

import clonestore
from clonestore.errors import AlreadyExists, ClonestoreError
from clonestore.query import TRUE, Cond
from clonestore.schema import INT64_MAX, removal_order
from clonestore.spi import AppendOnlyTables, Backend, Column, TableSpec, Unique, capabilities_of

__all__ = ["ALLOW_WIPE_OPTION", "CLAIMS", "TableClaims", "WipeRefused", "empty_table"]

#: The command-line flag that lets the kit empty tables holding rows it did not make.
ALLOW_WIPE_OPTION: Final = "--clonestore-allow-wipe"

#: Tables the kit has claimed in a database: their rows are the kit's to delete.
CLAIMS: Final = TableSpec(
    name="clonestore_kit_tables",
    columns=(Column(name="id", kind="id"), Column(name="table_name", kind="key", max_length=200)),
    unique=(Unique(("table_name",)),),
)


def empty_table(backend: Backend, spec: TableSpec) -> None:
    """Remove every row of ``spec``: by ``purge`` where the table is append-only (the
    only way its rows leave), else by ``delete``."""
    option = spec.append_only
    purged = option is not None and option.purge_by is not None
    if purged and "append_only" in capabilities_of(backend):
        cast(AppendOnlyTables, backend).purge(spec, INT64_MAX)
    else:
        backend.delete(spec, TRUE)


def _with_referencing(
    specs: Sequence[TableSpec], others: Iterable[TableSpec]
) -> list[TableSpec]:
    """``specs`` and, transitively, the tables of ``others`` pointing at one of them, in
    an order that empties referencing tables first (:func:`clonestore.schema.removal_order`)."""
    chosen = {spec.name: spec for spec in specs}
    others = list(others)
    grown = True
    while grown:
        grown = False
        for other in others:
            if other.name not in chosen and any(
                fk.references in chosen for fk in other.foreign_keys
            ):
                chosen[other.name] = other
                grown = True
    return removal_order(chosen.values())


class WipeRefused(ClonestoreError):
    """The kit found rows it did not make in a table it would have to empty."""


class TableClaims:
    """Empties tables for the kit's tests, refusing tables that hold others' rows."""

    def __init__(self, allow_wipe: bool = False) -> None:
        self.allow_wipe = allow_wipe
        self._claimed: set[tuple[str, str]] = set()

    def empty(self, store: clonestore.Store, spec: TableSpec) -> None:
        """Delete every row of ``spec``'s table, claiming it first (see the module)."""
        self.empty_tables(store, [spec])

    def empty_tables(self, store: clonestore.Store, specs: Sequence[TableSpec]) -> None:
        """Delete every row of each table of ``specs``, claiming them first (all of them,
        before deleting anything: see the module), with the tables whose rows point at
        theirs (foreign keys), referencing rows first."""
        specs = _with_referencing(specs, store.tables.values())
        unclaimed = [spec for spec in specs if (store.url, spec.name) not in self._claimed]
        if unclaimed and store.url.rstrip("/") != "memory:":
            self._claim(store, unclaimed)
        self._claimed.update((store.url, spec.name) for spec in specs)
        backend = store.backend
        # One transaction: one commit (a journal sync on SQLite) instead of one per table.
        with backend.transaction():
            for spec in specs:
                empty_table(backend, spec)

    def _claim(self, store: clonestore.Store, specs: Sequence[TableSpec]) -> None:
        backend = store.backend
        # Every time (it is idempotent): stores on one URL need not share a database
        # (a scheme serving a private in-process one per store, as memory:// does).
        backend.create_tables([CLAIMS])
        names = tuple(spec.name for spec in specs)
        rows = backend.select(CLAIMS, Cond("table_name", "in", names))
        claimed = {row["table_name"] for row in rows}
        for spec in specs:
            if spec.name in claimed:
                continue
            # Allowed to wipe: what the table holds does not matter (no count to ask).
            held = 0 if self.allow_wipe else backend.count(spec, TRUE)
            if held:
                raise WipeRefused(
                    f"{store.url}: table {spec.name} holds {held} row(s) the clonestore kit "
                    "did not create, and the kit empties every table it tests; nothing was "
                    "deleted. Point --clonestore-url at an empty or throwaway database, or "
                    f"pass {ALLOW_WIPE_OPTION} if this one's data may be destroyed"
                )
            with contextlib.suppress(AlreadyExists):  # another process claimed it first
                backend.insert(CLAIMS, {"id": str(uuid.uuid4()), "table_name": spec.name})
