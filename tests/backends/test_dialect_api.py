"""The dialect API (clonestore_peewee.dialects): a new SQL engine fills in a Dialect;
the shared layer adapts to what the dialect says the engine lacks. Shown here with
dialects derived from SQLite's, on SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from clonestore_peewee.dialects import SQLITE
from clonestore_peewee.sqlite._backend import SqliteBackend

from clonestore.query import Cond, OrderBy
from clonestore.spi import Column, TableSpec

ITEMS = TableSpec(
    name="items",
    columns=(Column(name="id", kind="id"), Column(name="n", kind="int")),
)


class _NoArrays(type(SQLITE)):  # type: ignore[misc]
    """SQLite's dialect, as for an engine without array parameters."""

    array_params = False


class _NoArraysBackend(SqliteBackend):
    dialect = _NoArrays()


def _row(n: int) -> dict[str, object]:
    return {"id": str(uuid.UUID(int=n + 1)), "n": n}


@pytest.fixture
def backends() -> Iterator[tuple[SqliteBackend, SqliteBackend]]:
    plain, no_arrays = SqliteBackend("sqlite:///:memory:"), _NoArraysBackend("sqlite:///:memory:")
    for backend in (plain, no_arrays):
        backend.create_tables([ITEMS])
        backend.insert_many(ITEMS, [_row(n) for n in range(30)])
    yield plain, no_arrays
    plain.close()
    no_arrays.close()


@pytest.mark.parametrize("op", ["in", "not_in"])
def test_long_in_lists_without_array_parameters(backends, op):
    """Without array_params, a long ``in`` list gets a placeholder per value and selects
    the same rows as SQLite's array parameter does."""
    plain, no_arrays = backends
    ids = tuple(str(uuid.UUID(int=n + 1)) for n in range(0, 30, 2))  # 15: past SMALL_IN
    where = Cond("id", op, ids)
    order = [OrderBy("id")]
    assert no_arrays.select(ITEMS, where, order) == plain.select(ITEMS, where, order)
    assert len(no_arrays.select(ITEMS, where, order)) == 15
    shapes = [key for key in no_arrays.compiler.cache if key[0] == "select"]
    sql = no_arrays.compiler.cache[shapes[-1]].sql
    assert sql.count("?") == 15
    assert "json_each" not in sql
