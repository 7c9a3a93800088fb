"""Dump and load (issue 26 item 4): a dump taken from SQLite loads into every backend
with every answer kept and the audit verifying; damaged, truncated, newer or unfitting
files and non-empty targets are refused before anything is written; the CLI's dump,
load and backup."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import clonestore
from clonestore import DumpError
from clonestore.query import TRUE, Cond
from clonestore.testing import StoreFactory
from clonestore.testing.observable import (
    PLUGINS,
    assert_same_observable_state,
    observable_state,
    populate,
)


def _sqlite_source(tmp_path: Path) -> clonestore.Store:
    store = clonestore.open(f"sqlite:///{tmp_path / 'source.db'}", plugins=list(PLUGINS))
    populate(store, users=4)
    return store


def test_sqlite_dump_loads_into_every_backend(store_factory: StoreFactory, tmp_path: Path) -> None:
    """A dump from SQLite loads into memory, SQLite, PostgreSQL and MariaDB: every read
    answers alike (reopened too), the audit verifies up to the head recorded before."""
    with _sqlite_source(tmp_path) as source:
        head = source.audit.head()
        source.dump(tmp_path / "dump.gz")
        target = store_factory(plugins=list(PLUGINS))
        target.load(tmp_path / "dump.gz")
        assert target.audit.verify(expect_head=head).ok
        assert_same_observable_state(source, target)
        if not target.url.startswith("memory:"):
            target.close()
            reopened = store_factory(plugins=list(PLUGINS))
            assert reopened.audit.verify(expect_head=head).ok
            assert_same_observable_state(source, reopened)
            # The moved database goes on: the chains continue from the loaded heads.
            reopened.users.create(email="after@example.com", name="After")
            assert reopened.audit.verify().ok


def _dump(tmp_path: Path, name: str = "dump.jsonl") -> Path:
    path = tmp_path / name
    with _sqlite_source(tmp_path) as source:
        source.dump(path)
    return path


def _empty_target() -> clonestore.Store:
    return clonestore.open(f"memory://t-{uuid.uuid4().hex}", plugins=list(PLUGINS))


def _refused(path: Path, reason: str, **options: object) -> DumpError:
    with _empty_target() as target:
        with pytest.raises(DumpError) as refused:
            target.load(path, **options)  # type: ignore[arg-type]
        assert refused.value.reason == reason, refused.value
        rows = {k: v for k, v in observable_state(target).items() if k.startswith("rows:")}
        assert all(not value for value in rows.values()), "a refused load wrote rows"
    return refused.value


def test_the_file_is_versioned_json_lines_with_checksums(tmp_path: Path) -> None:
    """The header names format, version, tables and columns; each table's rows end with
    their count and sha256; the last line says the dump is complete."""
    lines = _dump(tmp_path).read_bytes().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "clonestore-dump"
    assert header["version"] == 1
    names = [t["name"] for t in header["tables"]]
    assert names[0] == "users"
    assert {"audit_entries", "audit_heads", "cache_embeddings",
                                    "ratelimit_windows", "turns", "memories"} <= set(names)
    assert json.loads(lines[-1])["done"] is True
    ends = [json.loads(line) for line in lines if line.startswith(b'{"end"')]
    assert [e["end"] for e in ends] == names


def test_damaged_truncated_newer_or_foreign_files_are_refused_before_writing(
    tmp_path: Path,
) -> None:
    """Each bad file is a DumpError with its reason, and the target stays empty."""
    path = _dump(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_bytes(b"".join(lines[: len(lines) // 2]))
    assert "take the dump again" in str(_refused(truncated, "truncated"))
    tampered = tmp_path / "tampered.jsonl"
    row = next(i for i, line in enumerate(lines) if b"Person 0" in line)
    tampered.write_bytes(b"".join(
        [*lines[:row], lines[row].replace(b"Person 0", b"Person X"), *lines[row + 1:]]
    ))
    _refused(tampered, "corrupt")
    newer = tmp_path / "newer.jsonl"
    header = json.loads(lines[0])
    header["version"] = 99
    newer.write_bytes(json.dumps(header).encode() + b"\n" + b"".join(lines[1:]))
    assert "upgrade clonestore" in str(_refused(newer, "version"))
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text('{"hello": "world"}\n')
    _refused(foreign, "corrupt")
    gz = tmp_path / "cut.gz"
    gz.write_bytes(gzip.compress(path.read_bytes())[:-200])
    _refused(gz, "truncated")
    _refused(tmp_path / "missing.gz", "missing")
    with clonestore.open(f"memory://{uuid.uuid4().hex}") as bare:  # no plugins
        with pytest.raises(DumpError) as refused:
            bare.load(path)
        assert refused.value.reason == "schema"
        assert "plugins" in str(refused.value)


def test_a_non_empty_target_is_refused_unless_told(tmp_path: Path) -> None:
    """A target holding rows the load did not write is refused, unchanged; with
    allow_non_empty the dump's rows are added beside them."""
    path = _dump(tmp_path)
    with _empty_target() as target:
        mine = target.users.create(email="mine@example.com", name="Mine")
        before = observable_state(target)
        with pytest.raises(DumpError) as refused:
            target.load(path)
        assert refused.value.reason == "not_empty"
        assert "--allow-non-empty" in str(refused.value)
        assert observable_state(target) == before
        target.load(path, allow_non_empty=True)
        assert target.users.get(mine.id) == mine
        assert target.users.count(with_deleted=True) == 5
        assert target.audit.verify().ok


def test_a_load_failing_midway_keeps_whole_batches_and_continues(tmp_path: Path) -> None:
    """A batch that fails (a taken id) is a DumpError 'interrupted' naming the cause; the
    batches before it stay, none half-written; the same load run again continues."""
    path = _dump(tmp_path)
    source = f"sqlite:///{tmp_path / 'source.db'}"
    with clonestore.open(source, plugins=list(PLUGINS)) as src, _empty_target() as target:
        # A row the dump will bring, planted behind the load's back mid-way.
        turn = src.turns.find_many(order_by="id")[-1]
        calls: list[str] = []

        def plant(table: str, done: int, total: int) -> None:
            # Once turns are loading (their sessions are in: the foreign key holds).
            if table == "turns" and not calls:
                calls.append(table)
                spec = target.tables["turns"]
                target.backend.insert(spec, src.backend.get(spec, turn.id))

        with pytest.raises(DumpError) as stopped:
            target.load(path, batch_size=2, progress=plant)
        assert stopped.value.reason == "interrupted"
        assert "run the same load again" in str(stopped.value)
        turns = target.backend.count(target.tables["turns"], TRUE)
        assert turns % 2 == 1  # the planted row and whole batches of 2
        target.backend.delete(
            target.tables["turns"], Cond("id", "eq", turn.id)
        )
        target.load(path, batch_size=2)
        assert_same_observable_state(src, target)


def test_zstd_when_the_file_says_so(tmp_path: Path) -> None:
    """A dump named .zst is zstd-compressed (with the zstandard package) and loads."""
    pytest.importorskip("zstandard")
    path = _dump(tmp_path, "dump.zst")
    assert path.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    with _empty_target() as target:
        assert target.load(path)["total_rows"] > 0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("clonestore")
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=300,
        env=dict(os.environ), check=False,
    )


def test_cli_dump_load_and_backup(tmp_path: Path) -> None:
    """`clonestore dump`, `load` and `backup` move a SQLite database: the copies answer
    alike and verify; a second load, an existing file and a backend without a native
    backup are one-line errors saying what to do."""
    _sqlite_source(tmp_path).close()
    source = f"sqlite:///{tmp_path / 'source.db'}"
    target = f"sqlite:///{tmp_path / 'target.db'}"
    done = _cli("dump", source, str(tmp_path / "d.gz"))
    assert done.returncode == 0, done.stderr
    assert "dumped" in done.stdout
    done = _cli("load", str(tmp_path / "d.gz"), target, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"]["audit_entries"] > 0
    again = _cli("load", str(tmp_path / "d.gz"), target)
    assert again.returncode == 1
    assert "not empty" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    exists = _cli("dump", source, str(tmp_path / "d.gz"))
    assert exists.returncode == 1
    assert "name a new file" in exists.stderr
    done = _cli("backup", source, str(tmp_path / "copy.db"))
    assert done.returncode == 0, done.stderr
    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    assert _cli("audit", "verify", "--url", target).returncode == 0
    with clonestore.open(source, plugins=list(PLUGINS)) as a:
        for url in (target, copy):
            with clonestore.open(url, plugins=list(PLUGINS)) as b:
                assert_same_observable_state(a, b)
    refused = _cli("backup", "memory://", str(tmp_path / "m.db"))
    assert refused.returncode == 1
    assert "pg_dump" in refused.stderr
