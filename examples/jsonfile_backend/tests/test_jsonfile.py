"""What only jsonfile:// has to prove: exact values on disk, atomic commits, one
database per file. The SPI contract itself is the conformance kit's job:
``python -m pytest --pyargs clonestore.testing --clonestore-url=jsonfile:///tmp/x.json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from clonestore_jsonfile.encoding import decode_value, dumps, encode_value, loads

import clonestore
from clonestore import BackendError, ConfigurationError, StorageUnavailable
from clonestore.testing import FrozenClock, sequential_ids

EXACT_VALUES: list[Any] = [
    None,
    True,
    0,
    -(2**63),
    2**63 - 1,
    1.0,
    -0.0,
    1e16,
    0.1,
    5e-324,
    1.7976931348623157e308,
    "",
    "plain",
    'ünïcødé 🙂 \u2028 "quoted" \\ back',
    Decimal("0.000001"),
    Decimal("-123456789.123456"),
    Decimal("1.500000"),
    Decimal("1E+2"),
    datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    [1, 1.0, "1", None, [True, False]],
    {"n": 1, "f": 1.0, "big": 1e16, "neg": -0.0, "deep": {"list": [{"x": None}]}},
    {"$datetime": "not a date", "$decimal": "nor a decimal"},
    {"$object": {"$object": 1}},
    {"$": "dollar key", "": "empty key"},
]


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A jsonfile:// URL in a fresh directory, without fsync (tests need not survive power cuts)."""
    return f"jsonfile://{tmp_path / 'db.json'}?fsync=false"


@pytest.fixture
def open_store(url: str) -> Iterator[Any]:
    """``open_store(**kwargs)`` opens a store on ``url``; all are closed at teardown."""
    stores: list[clonestore.Store] = []

    def open_one(**kwargs: Any) -> clonestore.Store:
        store = clonestore.open(url, **kwargs)
        stores.append(store)
        return store

    yield open_one
    for store in stores:
        store.close()


def _file(url: str) -> Path:
    return Path(url.removeprefix("jsonfile://").partition("?")[0])


@pytest.mark.parametrize("value", EXACT_VALUES, ids=repr)
def test_encoding_round_trips_exactly(value: Any) -> None:
    """Every value kind comes back from the file equal and of the same type, nested too."""
    back = decode_value(loads(dumps(encode_value(value))))
    assert back == value
    assert repr(back) == repr(value)  # catches 1 vs 1.0, -0.0 vs 0.0, Decimal exponents


def test_encoding_keeps_the_utc_offset_and_refuses_naive_datetimes() -> None:
    """Datetimes come back aware with their offset; naive ones are never written."""
    plus_two = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    back = decode_value(loads(dumps(encode_value(plus_two))))
    assert back == plus_two
    assert back.utcoffset() == timedelta(hours=2)
    with pytest.raises(ValueError, match="naive"):
        encode_value(datetime(2024, 5, 1))


def test_records_survive_a_reopen_exactly(open_store: Any, url: str) -> None:
    """Everything a store wrote is read back equal after the file is reopened."""
    store = open_store(clock=FrozenClock(step=0.001), id_factory=sequential_ids())
    ada = store.users.create(
        email="Ada@Example.com",
        name="Ada",
        personality_traits=["curious", "curious"],
        settings={"int": 1, "float": 1.0, "big": 1e16, "neg": -0.0, "$tag": {"$decimal": "x"}},
    )
    session = store.sessions.create(user_id=ada.id)
    turn = store.sessions.add_turn(
        session.id, user_transcript="hi", llm_cost=Decimal("0.000001"), asr_latency_ms=7
    )
    memory = store.memories.add(ada.id, "likes tea", [0.25, -0.0, 1e16])
    session = store.sessions.get(session.id)
    store.close()

    again = open_store()
    assert again.users.get(ada.id) == ada
    assert again.users.find_by_email("ADA@example.com") == ada
    assert again.sessions.get(session.id) == session
    assert again.turns.get(turn.id) == turn
    assert again.memories.get(memory.id) == memory
    json.loads(_file(url).read_text())  # the file is plain JSON


def _create_then_fail(store: clonestore.Store, email: str) -> None:
    with store.transaction():
        store.users.create(email=email, name="Lost")
        raise RuntimeError("roll back")


def test_a_rolled_back_transaction_leaves_the_file_alone(open_store: Any, url: str) -> None:
    """Only commits write the file; a rollback, nested savepoints included, changes nothing."""
    store = open_store()
    store.users.create(email="kept@example.com", name="Kept")
    before = _file(url).read_bytes()
    with pytest.raises(RuntimeError):
        _create_then_fail(store, "lost@example.com")
    assert _file(url).read_bytes() == before
    with store.transaction():
        store.users.create(email="outer@example.com", name="Outer")
        with pytest.raises(RuntimeError):
            _create_then_fail(store, "inner@example.com")
        assert _file(url).read_bytes() == before  # nothing written before the commit
    store.close()
    emails = {u.email for u in open_store().users.find_many()}
    assert emails == {"kept@example.com", "outer@example.com"}


def test_a_failed_write_of_the_file_rolls_the_commit_back(
    open_store: Any, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the file cannot be replaced the commit fails as StorageUnavailable, memory
    and disk keep the old state, and no temporary file is left behind."""
    store = open_store()
    store.users.create(email="kept@example.com", name="Kept")
    before = _file(url).read_bytes()

    def refuse(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(StorageUnavailable):
        store.users.create(email="lost@example.com", name="Lost")
    monkeypatch.undo()
    assert store.users.count() == 1
    assert _file(url).read_bytes() == before
    assert sorted(p.name for p in _file(url).parent.iterdir()) == ["db.json", "db.json.lock"]


def test_stores_on_one_file_share_one_database(open_store: Any) -> None:
    """Two stores of one process on the same file see each other's commits at once."""
    first, second = open_store(), open_store()
    user = first.users.create(email="shared@example.com", name="Shared")
    assert second.users.get(user.id) == user


def test_another_process_cannot_open_an_open_file(open_store: Any, url: str) -> None:
    """While a process has the file open, another process gets StorageUnavailable."""
    open_store()
    code = (
        "import clonestore, sys\n"
        "try:\n"
        f"    clonestore.open({url!r})\n"
        "except clonestore.StorageUnavailable as exc:\n"
        "    print('refused:', exc)\n"
        "    sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "open in another process" in done.stdout


def test_tables_of_plugins_not_loaded_are_kept(open_store: Any, url: str) -> None:
    """Tables in the file that the opening store does not declare are written back unchanged."""
    path = _file(url)
    open_store().close()
    document = json.loads(path.read_text())
    theirs = [{"id": "x", "when": {"$datetime": "2024-01-01T00:00:00.000000+00:00"}}]
    document["tables"]["someone_elses"] = theirs
    path.write_text(json.dumps(document))
    store = open_store()
    store.users.create(email="new@example.com", name="New")
    assert json.loads(path.read_text())["tables"]["someone_elses"] == theirs


def test_a_file_that_is_not_ours_is_refused(url: str) -> None:
    """A file that is not a jsonfile database raises BackendError rather than being overwritten."""
    path = _file(url)
    path.write_text('{"hello": "world"}')
    with pytest.raises(BackendError, match="not readable"):
        clonestore.open(url)
    assert path.read_text() == '{"hello": "world"}'


@pytest.mark.parametrize(
    "bad_url",
    [
        "jsonfile://",
        "jsonfile:///tmp/",
        "jsonfile:///tmp/x.json?fsync=maybe",
        "jsonfile:///tmp/x.json?color=blue",
        "jsonfile:///no/such/directory/x.json",
    ],
)
def test_bad_urls_are_configuration_errors(bad_url: str) -> None:
    """A URL without a file, with an unknown option or in a missing directory is refused."""
    with pytest.raises(ConfigurationError):
        clonestore.open(bad_url)


def test_health_reports_the_file(open_store: Any, url: str) -> None:
    """health() names the backend and the file and counts what it holds."""
    store = open_store()
    store.users.create(email="h@example.com", name="H")
    report = store.health()
    assert report["ok"] is True
    assert report["backend"] == "jsonfile"
    assert report["path"] == str(_file(url))
    assert report["rows"] == 1
    assert report["bytes"] > 0
