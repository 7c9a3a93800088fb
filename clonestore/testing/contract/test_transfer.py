"""Contract: store.dump and store.load move a whole database (core and plugin tables,
audit chains included) between this backend and memory://, every answer kept."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import clonestore
from clonestore import DumpError
from clonestore.testing import StoreFactory
from clonestore.testing.observable import (
    PLUGINS,
    assert_same_observable_state,
    plugins_for,
    populate,
)


class _Stop(Exception):
    """Raised from a progress callback: the load is cut off there."""


@contextmanager
def _scratch() -> Iterator[Path]:
    """A directory for the dump file, removed after."""
    with tempfile.TemporaryDirectory(prefix="clonestore-kit-") as directory:
        yield Path(directory)


def _memory() -> clonestore.Store:
    return clonestore.open(f"memory://dump-{uuid.uuid4().hex}", plugins=list(PLUGINS))


def test_dump_loads_into_memory_with_every_answer(store_factory: StoreFactory) -> None:
    """A dump of this backend loads into memory://: same answers, audit verifies to its head."""
    with _scratch() as tmp_path:
        _dump_to_memory(store_factory, tmp_path)


def _dump_to_memory(store_factory: StoreFactory, tmp_path: Path) -> None:
    source = store_factory(plugins=plugins_for(store_factory().backend))
    populate(source)
    head = source.audit.head()
    summary = source.dump(tmp_path / "dump.gz")
    assert summary["total_rows"] == sum(summary["rows"].values()) > 0
    with _memory() as target:
        loaded = target.load(tmp_path / "dump.gz")
        assert loaded["rows"] == summary["rows"]
        assert target.audit.verify(expect_head=head).ok
        assert_same_observable_state(source, target)


def test_load_from_memory_keeps_every_answer(store_factory: StoreFactory) -> None:
    """A dump of memory:// loads into this backend (empty) and answers alike."""
    with _scratch() as tmp_path, _memory() as source:
        populate(source)
        head = source.audit.head()
        source.dump(tmp_path / "dump.gz")
        target = store_factory(plugins=plugins_for(store_factory().backend))
        target.load(tmp_path / "dump.gz")
        assert target.audit.verify(expect_head=head).ok
        assert_same_observable_state(source, target)


def test_interrupted_load_continues_and_refuses_foreign_rows(store_factory: StoreFactory) -> None:
    """A load cut off between batches continues when run again; a second load is refused."""
    # Whole batches stay, and the store ends as the source; rows it did not write stop a load.
    with _scratch() as tmp_path, _memory() as source:
        populate(source)
        source.dump(tmp_path / "dump.gz")
        target = store_factory(plugins=plugins_for(store_factory().backend))
        calls = []

        def stop(table: str, done: int, total: int) -> None:
            calls.append(done)
            if len(calls) == 3:
                raise _Stop

        with pytest.raises(_Stop):
            target.load(tmp_path / "dump.gz", batch_size=4, progress=stop)
        again = target.load(tmp_path / "dump.gz", batch_size=4)
        assert again["resumed_from"] == calls[-1] > 0
        assert_same_observable_state(source, target)
        with pytest.raises(DumpError) as refused:
            target.load(tmp_path / "dump.gz")
        assert refused.value.reason == "not_empty"
        assert_same_observable_state(source, target)
