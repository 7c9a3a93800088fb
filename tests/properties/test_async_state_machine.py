"""The kit's state machine with the async API beside the sync one: memory:// (the sync
oracle) against memory://, SQLite and PostgreSQL opened with ``open_async`` (every call an
AsyncStore's, awaited on an event loop), and synchronous SQLite in the same lockstep, so the
same operations give the same results, errors and tables through either API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from clonestore.testing.differential import Stores
from clonestore.testing.properties.test_operations import STEPS, machine_for

#: Examples per run: the lockstep runs five stores, each step through an event loop.
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def async_stores(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Stores]:
    """The sync memory:// oracle, sync SQLite, and async memory://, SQLite and PostgreSQL."""
    folder: Path = tmp_path_factory.mktemp("async-equivalence")
    urls = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{folder / 'sync.db'}",
        "memory-async": "memory://",
        "sqlite-async": f"sqlite:///{folder / 'async.db'}",
        "postgres-async": postgres_url,
    }
    stores = Stores(urls, asynchronous=("memory-async", "sqlite-async", "postgres-async"))
    try:
        yield stores
    finally:
        stores.close()


def test_async_api_agrees_with_sync_api(async_stores: Stores) -> None:
    """Any sequence of operations gives the same results, errors and tables through
    open_async as through the synchronous API."""
    run_state_machine_as_test(
        machine_for(async_stores),
        settings=settings(
            settings.default,
            max_examples=min(settings.default.max_examples, MAX_EXAMPLES),
            stateful_step_count=STEPS,
            deadline=None,
        ),
    )
