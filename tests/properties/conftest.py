"""Stores on every backend at once, for the differential property tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clonestore.testing import FrozenClock
from tests.properties.equivalence import Stores


@pytest.fixture(scope="module")
def equivalence_stores(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[Stores]:
    """memory:// (the oracle), a SQLite file and PostgreSQL, sharing one clock."""
    path: Path = tmp_path_factory.mktemp("equivalence") / "store.db"
    stores = Stores(
        {"memory": "memory://", "sqlite": f"sqlite:///{path}", "postgres": postgres_url},
        FrozenClock(),
    )
    try:
        yield stores
    finally:
        stores.close()
