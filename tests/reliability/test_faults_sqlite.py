"""SQLite faults: a database locked by another process, a read-only file, a missing path."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import clonestore
from bench.soak import lock_sqlite
from clonestore import StorageUnavailable


def _url(path: Path) -> str:
    return "sqlite:///" + str(path)


def test_locked_database_waits_then_fails_clearly(tmp_path: Path) -> None:
    """Another process holding the write lock: writers wait busy_timeout, then get a
    StorageUnavailable naming the lock; the same store writes once the lock is gone."""
    path = tmp_path / "locked.db"
    with clonestore.open(_url(path), busy_timeout=0.3) as store:
        user = store.users.create(email="lock@example.com", name="l")
        with lock_sqlite(str(path), 2.0):
            time.sleep(0.8)  # the other process has the lock (it starts in well under that)
            started = time.monotonic()
            with pytest.raises(StorageUnavailable, match=r"locked.*busy_timeout"):
                store.users.update(user.id, name="blocked")
            assert 0.25 <= time.monotonic() - started < 2.0
            assert store.users.get(user.id).name == "l"  # readers are not blocked (WAL)
        assert store.users.update(user.id, name="after").name == "after"


def test_short_lock_is_waited_out(tmp_path: Path) -> None:
    """A lock held for less than busy_timeout delays a write but does not fail it."""
    path = tmp_path / "short.db"
    with clonestore.open(_url(path), busy_timeout=10) as store:
        user = store.users.create(email="short@example.com", name="s")
        with lock_sqlite(str(path), 0.5):
            time.sleep(0.3)
            assert store.users.update(user.id, name="waited").name == "waited"


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory holding a clonestore database that this process cannot write."""
    source = tmp_path / "rw"
    source.mkdir()
    with clonestore.open(_url(source / "ro.db")) as store:
        store.users.create(email="ro@example.com", name="r")
    if os.geteuid() != 0:
        (source / "ro.db").chmod(0o444)
        source.chmod(0o555)
        yield source
        source.chmod(0o755)
        return
    # root writes through file modes: use a read-only mount instead.
    mount = tmp_path / "ro"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                       check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("running as root without mount(8): cannot make a read-only file")
    try:
        shutil.copy(source / "ro.db", mount / "ro.db")
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True, timeout=10)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False, timeout=10)


def test_read_only_file_is_a_clear_error(read_only_dir: Path) -> None:
    """A read-only database is StorageUnavailable saying it is read-only and what to do."""
    with (
        pytest.raises(StorageUnavailable, match="read-only; make both writable"),
        clonestore.open(_url(read_only_dir / "ro.db")) as store,
    ):
        store.users.create(email="w@example.com", name="w")


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing/dir/x.db", "does not exist; create it first"), (".", "is a directory")],
)
def test_bad_path_says_what_to_do(tmp_path: Path, name: str, message: str) -> None:
    """A database path in a missing directory, or naming a directory, is a clear error."""
    with pytest.raises(StorageUnavailable, match=message):
        clonestore.open(_url((tmp_path / name).resolve()))
