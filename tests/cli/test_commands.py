"""The data and upkeep commands on every backend: seed, export, erase, audit verify,
cache clean, ratelimit cleanup, doctor and shell."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import psycopg2

import clonestore
from clonestore.demo import demo_email
from clonestore.spi import Cond

from ..tampering import unguarded
from .conftest import Run


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_seed_writes_the_demo_set_and_refuses_a_database_with_users(
    run: Run, keeper: clonestore.Store
) -> None:
    """`seed --users N` writes N users with everything they own; a second seed is refused
    without --force, and --force adds only the demo users that are missing."""
    done = run("seed", "--users", "3", "--json")
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["users"] == 3
    assert keeper.users.count() == 3
    user = keeper.users.find_by_email(demo_email(1))
    assert user is not None
    assert keeper.voice_models.active_for(user.id) is not None
    assert keeper.face_models.active_for(user.id) is not None
    sessions = keeper.sessions.find_many(where={"user_id": user.id})
    assert sessions
    assert all(s.total_turns >= 3 and s.ended_at is not None for s in sessions)
    assert keeper.turns.count() == report["turns"]
    memories = keeper.memories.find_many(where={"user_id": user.id})
    assert len(memories) == 4
    assert len(memories[0].embedding) == 32
    assert keeper.documents.count({"user_id": user.id}) == 3

    refused = run("seed", "--users", "3")
    assert refused.exit_code == 1
    assert "already has 3 user(s)" in _one_line(refused.stderr)
    assert "--force" in refused.stderr
    forced = run("seed", "--users", "4", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert "(3 demo user(s) already there)" in forced.stdout
    assert keeper.users.count() == 4


def test_export_prints_a_users_data_as_json_or_writes_a_file(
    run: Run, keeper: clonestore.Store, tmp_path: Path
) -> None:
    """`export USER_ID` prints the user's export as JSON; `--output FILE` writes the same."""
    assert run("seed", "--users", "1").exit_code == 0
    user = keeper.users.find_by_email(demo_email(0))
    assert user is not None
    done = run("export", user.id)
    assert done.exit_code == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["user"]["email"] == demo_email(0)
    assert {"sessions", "turns", "memories", "documents", "voice_models"} <= set(data)
    assert len(data["turns"]) == keeper.turns.count({"user_id": user.id})
    target = tmp_path / "export.json"
    written = run("export", user.id, "--output", str(target))
    assert written.exit_code == 0, written.stderr
    assert json.loads(target.read_text()) == data
    missing = run("export", "00000000-0000-4000-8000-000000000000")
    assert missing.exit_code == 1
    assert "no user with id" in _one_line(missing.stderr)


def test_erase_asks_first_and_removes_everything(run: Run, keeper: clonestore.Store) -> None:
    """`erase` refuses unless confirmed (prompt or --yes); once confirmed the user and
    every row they own are gone."""
    assert run("seed", "--users", "2").exit_code == 0
    user = keeper.users.find_by_email(demo_email(0))
    assert user is not None
    declined = run("erase", user.id, input="n\n")
    assert declined.exit_code == 1
    assert "nothing was erased" in declined.stderr
    assert keeper.users.get_or_none(user.id) is not None
    confirmed = run("erase", user.id, input="y\n")
    assert confirmed.exit_code == 0, confirmed.stderr
    assert "erased user" in confirmed.stdout
    assert keeper.users.get_or_none(user.id) is None
    assert keeper.sessions.count({"user_id": user.id}) == 0
    other = keeper.users.find_by_email(demo_email(1))
    assert other is not None
    done = run("erase", other.id, "--yes", "--json", "--plugins", "audit,cache,ratelimit")
    assert done.exit_code == 0, done.stderr
    removed = json.loads(done.stdout)["removed"]
    assert removed["users"] == 1
    assert removed["turns"] >= 3
    assert keeper.users.count() == 0


def _tamper(store: clonestore.Store, seq: int) -> None:
    """Change an audit row behind the plugin's back, as someone with database access could."""
    if store.url.startswith("postgresql:"):
        conn = psycopg2.connect(store.url)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SET session_replication_role = replica")  # past the trigger
                cur.execute("UPDATE audit_log SET action = 'forged' WHERE seq = %s", (seq,))
        finally:
            conn.close()
    else:
        with unguarded(store, "audit_log"):  # past the backend's append-only guard
            store.backend.update(store.tables["audit_log"], Cond("seq", "eq", seq),
                                 {"action": "forged"})


def test_audit_verify_exits_non_zero_on_a_broken_chain(
    run: Run, keeper: clonestore.Store
) -> None:
    """`audit verify` exits 0 on an intact chain and 1, naming the row, once one is changed."""
    user = keeper.users.create(email="ada@example.com", name="Ada")
    keeper.users.update(user.id, name="Ada L")
    keeper.audit.log("user.login", details={"via": "test"})
    ok = run("audit", "verify")
    assert ok.exit_code == 0, ok.stderr
    assert "audit chain ok (3 row(s) checked)" in ok.stdout
    _tamper(keeper, 2)
    broken = run("audit", "verify", "--json")
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["first_bad_seq"] == 2
    line = _one_line(broken.stderr)
    assert line.startswith("clonestore audit verify: error: audit chain broken at seq 2")
    assert "restore the audit tables from a backup" in line


def test_cache_clean_and_ratelimit_cleanup_remove_only_old_rows(
    run: Run, keeper: clonestore.Store, cli_url: str
) -> None:
    """`cache clean` removes expired entries and `ratelimit cleanup` ended windows;
    live ones stay."""
    past = keeper.clock() - timedelta(days=3)
    with clonestore.open(cli_url, plugins=["cache", "ratelimit"], clock=lambda: past) as old:
        old.cache.set_embedding("a" * 64, [0.1, 0.2], ttl=60)
        old.ratelimit.check_and_increment("user-1", "chat", 10, 3600)
    keeper.ratelimit.check_and_increment("user-1", "chat", 10, 3600)
    live = keeper.ratelimit.status("user-1", "chat", 10, 3600).remaining
    with clonestore.open(cli_url, plugins=["cache"]) as cached:
        cached.cache.set_embedding("b" * 64, [0.3, 0.4], ttl=3600)
        cleaned = run("cache", "clean", "--json")
        assert cleaned.exit_code == 0, cleaned.stderr
        assert json.loads(cleaned.stdout)["removed"]["embedding"] == 1
        assert cached.cache.get_embedding("b" * 64) == [0.3, 0.4]
    again = run("cache", "clean")
    assert "removed 0 expired entries" in again.stdout
    swept = run("ratelimit", "cleanup", "--json")
    assert swept.exit_code == 0, swept.stderr
    assert json.loads(swept.stdout)["removed"] == 1
    # An hour's window, read just before and after: the live window kept its count.
    assert keeper.ratelimit.status("user-1", "chat", 10, 3600).remaining == live


def test_doctor_reports_a_ready_store_and_fails_on_missing_tables(
    run: Run, keeper: clonestore.Store
) -> None:
    """`doctor` passes on a migrated store with its plugin tables, reporting each check,
    and fails with a next step when a plugin's tables are missing."""
    done = run("doctor", "--plugins", "cache,ratelimit,audit", "--json")
    assert done.exit_code == 0, done.stderr + done.stdout
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["connection"]["status"] == "ok"
    assert checks["migrations"]["status"] == "ok"
    assert checks["tables"]["status"] == "ok"
    if keeper.url.startswith("postgresql:"):
        assert "pgvector" in checks
    text = run("doctor")
    assert text.exit_code == 0
    assert "[ok] connection" in text.stdout


def test_doctor_on_an_unmigrated_sqlite_database_says_to_migrate(tmp_path: Path) -> None:
    """On a database never migrated, `doctor` exits 1 telling to run `clonestore migrate`."""
    from .conftest import _subprocess

    done = _subprocess("doctor", "--url", f"sqlite:///{tmp_path / 'new.db'}")
    assert done.exit_code == 1
    assert "[XX] migrations" in done.stdout
    line = _one_line(done.stderr)
    assert "run: clonestore migrate --url URL" in line


def test_shell_runs_python_with_the_store_open(run: Run, keeper: clonestore.Store) -> None:
    """`shell` starts a Python REPL where `store` is the open store."""
    keeper.users.create(email="ada@example.com", name="Ada")
    done = run("shell", input="print('users:', store.users.count())\n")
    assert done.exit_code == 0, done.stderr
    assert "users: 1" in done.stdout + done.stderr


def test_unknown_plugin_is_one_line(run: Run) -> None:
    """An unknown --plugins name fails with one line naming the installed plugins."""
    done = run("doctor", "--plugins", "nosuch")
    assert done.exit_code == 1
    assert "unknown plugin 'nosuch'" in _one_line(done.stderr)


def test_progress_shows_on_a_terminal_only(tmp_path: Path) -> None:
    """`seed` draws a progress bar when stderr is a terminal, and prints none to a pipe."""
    import os
    import pty
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'tty.db'}"
    command = [sys.executable, "-m", "clonestore.cli", "seed", "--users", "2", "--url", url]
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=follower, timeout=120,
                              check=False)
        os.close(follower)
        follower = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other side is closed: all read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert done.returncode == 0
    assert b"seeding users" in drawn
    assert b"100%" in drawn
    piped = subprocess.run([*command, "--force"], capture_output=True, text=True,
                           timeout=120, check=False)
    assert piped.returncode == 0
    assert piped.stderr == ""
