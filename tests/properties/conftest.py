"""The kit's differential properties on every backend of the matrix at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clonestore.testing.differential import Stores


@pytest.fixture(scope="module")
def differential_stores(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, mariadb_url: str
) -> Iterator[Stores]:
    """memory:// (the oracle), a SQLite file, PostgreSQL and MariaDB in lockstep, sharing
    one clock (overrides the kit's memory-and-one-URL pair)."""
    path: Path = tmp_path_factory.mktemp("equivalence") / "store.db"
    urls = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{path}",
        "postgres": postgres_url,
        "mariadb": mariadb_url,
    }
    stores = Stores(urls)
    try:
        yield stores
    finally:
        stores.close()


@pytest.fixture(scope="module")
def audited_stores(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, mariadb_url: str
) -> Iterator[Stores]:
    """The same four backends, each store opened with the (guarded) audit plugin."""
    path: Path = tmp_path_factory.mktemp("audited") / "store.db"
    urls = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{path}",
        "postgres": postgres_url,
        "mariadb": mariadb_url,
    }
    stores = Stores(urls, plugins=["audit"])
    try:
        yield stores
    finally:
        stores.close()
