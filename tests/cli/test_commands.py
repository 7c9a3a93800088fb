"""The data and upkeep commands on every backend: seed, export, erase, audit verify,
cache clean, ratelimit cleanup, doctor and shell."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import psycopg2

import clonestore
from clonestore._demo import demo_email
from clonestore.query import And, Cond
from clonestore.testing.wiping import empty_table
from clonestore.vectors import float32_values

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


def test_find_before_you_act_seed_lists_then_users_find_export_erase_by_email(
    run: Run, keeper: clonestore.Store
) -> None:
    """`seed` prints the ids and emails of the demo users it wrote; `users list` and
    `users find EMAIL` show them (table and --json); `export` and `erase` take an email
    as well as an id; a wrong user is one line saying what was wrong and how to list."""
    seeded = run("seed", "--users", "3")
    assert seeded.exit_code == 0, seeded.stderr
    users = [keeper.users.find_by_email(demo_email(n)) for n in range(3)]
    for user in users:
        assert user is not None
        assert any(user.id in line and user.email in line for line in seeded.stdout.splitlines())
    ada = users[0]
    assert ada is not None
    listed = run("users", "list")
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["id", "email", "name", "tier", "created_at"]
    assert all(u is not None and u.id in listed.stdout for u in users)
    assert "3 user(s)" in listed.stdout
    as_json = json.loads(run("users", "list", "--json").stdout)
    assert sorted(u["id"] for u in as_json) == sorted(u.id for u in users if u is not None)
    found = run("users", "find", ada.email.upper())
    assert found.exit_code == 0, found.stderr
    assert ada.id in found.stdout
    assert json.loads(run("users", "find", ada.email, "--json").stdout)["id"] == ada.id
    missing = run("users", "find", "nobody@example.com")
    assert missing.exit_code == 1
    line = _one_line(missing.stderr)
    assert "no user with email nobody@example.com" in line
    assert "clonestore users list --url" in line

    exported = run("export", ada.email)
    assert exported.exit_code == 0, exported.stderr
    assert json.loads(exported.stdout)["user"]["id"] == ada.id
    for wrong in ("nobody@example.com", "not-an-id"):
        failed = run("export", wrong)
        assert failed.exit_code == 1
        line = _one_line(failed.stderr)
        assert wrong in line, line
        assert "clonestore users list --url" in line, line
        assert "see the message above" not in line
    erased = run("erase", ada.email.title(), "--yes")
    assert erased.exit_code == 0, erased.stderr
    assert f"erased user {ada.id}" in erased.stdout
    assert keeper.users.get_or_none(ada.id) is None
    assert run("users", "find", ada.email).exit_code == 1


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


def _tamper(store: clonestore.Store, owner: str, seq: int) -> None:
    """Change an audit row behind the plugin's back, as someone with database access could."""
    if store.url.startswith("postgresql:"):
        conn = psycopg2.connect(store.url)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SET session_replication_role = replica")  # past the trigger
                cur.execute("UPDATE audit_entries SET action = 'forged' "
                            "WHERE owner = %s AND seq = %s", (owner, seq))
        finally:
            conn.close()
    else:
        with unguarded(store, "audit_entries"):  # past the backend's append-only guard
            where = And((Cond("owner", "eq", owner), Cond("seq", "eq", seq)))
            store.backend.update(store.tables["audit_entries"], where, {"action": "forged"})


def test_audit_verify_exits_non_zero_on_a_broken_chain(
    run: Run, keeper: clonestore.Store
) -> None:
    """`audit verify` exits 0 on intact chains and 1, naming the row, once one is changed;
    `--owner` checks one chain alone."""
    user = keeper.users.create(email="ada@example.com", name="Ada")
    keeper.users.update(user.id, name="Ada L")
    keeper.audit.log("user.login", details={"via": "test"})
    ok = run("audit", "verify")
    assert ok.exit_code == 0, ok.stderr
    assert "audit chain ok (3 row(s) checked, 2 chains)" in ok.stdout
    _tamper(keeper, user.id, 2)
    broken = run("audit", "verify", "--json")
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["first_bad_seq"] == 2
    line = _one_line(broken.stderr)
    assert line.startswith("clonestore audit verify: error: audit chain broken at seq 2")
    assert "restore the audit tables from a backup" in line
    assert run("audit", "verify", "--owner", "~system").exit_code == 0
    assert run("audit", "verify", "--owner", user.id).exit_code == 1


def test_audit_head_is_what_verify_expect_head_checks(run: Run, keeper: clonestore.Store) -> None:
    """`audit head` prints SEQ:HASH; `audit verify --expect-head` accepts it while the log
    reaches it, fails once the log was emptied behind its back, and refuses a malformed one."""
    user = keeper.users.create(email="ada@example.com", name="Ada")
    keeper.users.update(user.id, name="Ada L")
    printed = run("audit", "head")
    assert printed.exit_code == 0, printed.stderr
    head = _one_line(printed.stdout)
    seq, digest = head.split(":")
    assert (int(seq), digest) == keeper.audit.head()
    assert run("audit", "verify", "--expect-head", head).exit_code == 0
    bad = run("audit", "verify", "--expect-head", "12")
    assert bad.exit_code == 2
    assert "SEQ:HASH" in bad.stderr
    for name in ("audit_entries", "audit_heads"):
        empty_table(keeper.backend, keeper.tables[name])  # through the engine's purge unlock
    assert run("audit", "verify").exit_code == 0  # nothing left to contradict
    cut = run("audit", "verify", "--expect-head", head)
    assert cut.exit_code == 1
    assert "missing" in _one_line(cut.stderr)

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
        assert cached.cache.get_embedding("b" * 64) == float32_values([0.3, 0.4])
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
    """On a database never migrated, `doctor` exits 1 giving the `clonestore migrate`
    command to run, with the real URL (not a placeholder)."""
    import sqlite3

    from .conftest import _subprocess

    url = f"sqlite:///{tmp_path / 'new.db'}"
    sqlite3.connect(tmp_path / "new.db").close()  # an empty database file
    done = _subprocess("doctor", "--url", url)
    assert done.exit_code == 1
    assert "[XX] migrations" in done.stdout
    line = _one_line(done.stderr)
    assert line.endswith(f"run: clonestore migrate --url {url}"), line


def test_doctor_creates_no_sqlite_file_and_names_a_missing_directory(tmp_path: Path) -> None:
    """`doctor` on a SQLite file that does not exist creates nothing and says so (with
    the command that creates it); on a missing directory it names the directory, not a
    database server."""
    from .conftest import _subprocess

    url = f"sqlite:///{tmp_path / 'absent.db'}"
    done = _subprocess("doctor", "--url", url)
    assert done.exit_code == 1
    assert list(tmp_path.iterdir()) == []
    line = _one_line(done.stderr)
    assert "the database file does not exist" in line
    assert line.endswith(f"clonestore migrate --url {url}"), line
    deep = tmp_path / "no" / "such"
    done = _subprocess("doctor", "--url", f"sqlite:///{deep / 'x.db'}")
    assert done.exit_code == 1
    line = _one_line(done.stderr)
    assert f"the directory {deep} does not exist" in line, line
    assert f"mkdir -p {deep}" in line
    assert "server" not in line
    assert list(tmp_path.iterdir()) == []


def test_doctor_reports_missing_plugin_tables_with_the_command_to_run(
    run: Run, cli_url: str
) -> None:
    """`doctor --plugins audit` on a store without the audit tables reports them as a
    failed check (it does not refuse to open) and gives the full migrate command."""
    with clonestore.open(cli_url):  # the core's tables only (and memory:// kept alive)
        done = run("doctor", "--plugins", "audit")
        assert done.exit_code == 1, done.stderr
        assert "[XX] tables" in done.stdout
        assert "audit_entries" in done.stdout
        line = _one_line(done.stderr)
        assert line.endswith(f"run: clonestore migrate --url {cli_url} --plugins audit"), line
        assert "check the URL" not in line


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
