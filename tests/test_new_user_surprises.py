"""What a new user hit on a clean clone (issue 10, part D), on every backend of the matrix."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import clonestore
from clonestore import AlreadyExists, ConfigurationError, ValidationError
from clonestore.testing.contract._builders import new_user, nothing_written

INT64_MAX = 2**63 - 1


def test_find_many_takes_the_keyword_lookups_find_one_takes(store: clonestore.Store) -> None:
    """find_many(name="A") filters like find_one(name="A"); with where too, both apply."""
    a = new_user(store, name="A")
    new_user(store, name="B")
    assert store.users.find_many(name="A") == [a] == [store.users.find_one(name="A")]
    assert store.users.find_many({"name": "A"}, subscription_tier="free") == [a]
    assert store.users.count(name="A") == 1
    with pytest.raises(ValidationError, match="name"):
        store.users.find_many({"name": "A"}, name="B")
    with pytest.raises(ValidationError, match="nickname"):
        store.users.find_many(nickname="A")


def test_update_refuses_id_with_a_typed_error(store: clonestore.Store) -> None:
    """update(id, id=...) is a ValidationError naming the field, not a TypeError."""
    user, other = new_user(store), new_user(store, name="Other")
    with nothing_written(store), pytest.raises(ValidationError) as error:
        store.users.update(user.id, id=other.id)
    assert error.value.field == "id"


def test_update_many_needs_a_filter_or_all(store: clonestore.Store) -> None:
    """update_many(None | {}, ...) changes nothing and says to pass all=True; all=True works."""
    new_user(store, name="A")
    new_user(store, name="B")
    for where in (None, {}):
        with nothing_written(store), pytest.raises(ValidationError, match="all=True"):
            store.users.update_many(where, name="x")
    with nothing_written(store), pytest.raises(ValidationError, match="all"):
        store.users.update_many(None, all="yes", name="x")
    assert store.users.update_many(None, all=True, name="x") == 2
    assert {u.name for u in store.users.find_many()} == {"x"}


@pytest.mark.parametrize("limit", [INT64_MAX + 1, -1])
def test_find_many_bounds_are_validated_alike(store: clonestore.Store, limit: int) -> None:
    """limit and offset outside 0..2**63-1 are a ValidationError on every backend."""
    new_user(store)
    with pytest.raises(ValidationError, match="limit"):
        store.users.find_many(limit=limit)
    with pytest.raises(ValidationError, match="offset"):
        store.users.find_many(offset=limit)


def test_find_many_takes_the_largest_bounds(store: clonestore.Store) -> None:
    """limit=2**63-1 returns every row and offset=2**63-1 none, on every backend."""
    user = new_user(store)
    assert store.users.find_many(limit=INT64_MAX) == [user]
    assert store.users.find_many(limit=INT64_MAX, offset=INT64_MAX) == []


def test_duplicate_email_names_the_email_field(store: clonestore.Store) -> None:
    """A taken email (on create, update and create_many) says email, not email_key."""
    new_user(store, email="ada@example.com")
    other = new_user(store, email="bob@example.com")
    attempts = {
        "create": lambda: store.users.create(email="ADA@example.com", name="Ada"),
        "update": lambda: store.users.update(other.id, email="Ada@Example.com"),
        "create_many": lambda: store.users.create_many([{"email": "ada@EXAMPLE.com", "name": "A"}]),
    }
    for what, attempt in attempts.items():
        with nothing_written(store), pytest.raises(AlreadyExists) as error:
            attempt()
        assert "email already used" in str(error.value), what
        assert "email_key" not in str(error.value), what


def test_plugins_may_be_one_comma_separated_string(clonestore_url: str) -> None:
    """open(url, plugins="cache") enables the cache; "cache, audit" enables both."""
    with clonestore.open(clonestore_url, plugins="cache") as store:
        assert store.cache is not None
    with clonestore.open(clonestore_url, plugins="cache, audit") as store:
        assert store.cache is not None
        assert store.audit is not None


def test_plugins_of_another_type_are_refused_clearly() -> None:
    """plugins=42 is a ConfigurationError saying what plugins takes."""
    with pytest.raises(ConfigurationError, match=r"plugins=\['cache'\]"):
        clonestore.open("memory://", plugins=42)  # type: ignore[arg-type]


def test_a_missing_service_names_its_plugin() -> None:
    """store.cache without the cache plugin is an AttributeError saying how to enable it."""
    with clonestore.open("memory://") as store:
        for name in ("cache", "ratelimit", "audit"):
            with pytest.raises(AttributeError, match=rf"plugins=\['{name}'\]"):
                getattr(store, name)
            assert not hasattr(store, name)
        with pytest.raises(AttributeError, match="has no attribute 'nope'"):
            store.nope  # noqa: B018


# ------------------------------------------------ README command 2 on a fresh machine (issue 23)

_ROOT = Path(__file__).resolve().parents[1]
_SETUP = "sh tools/test-servers.sh"


def _readme_commands() -> list[str]:
    text = (_ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## The two commands", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_readme_command_2_sets_up_what_pip_cannot_and_ci_runs_it_exactly() -> None:
    """README command 2 starts with the set-up script, and .ci/run runs that very line
    (no install logic of its own)."""
    command_2 = _readme_commands()[1]
    assert command_2.startswith(f"{_SETUP} && "), command_2
    assert command_2.endswith(".venv/bin/python -m pytest"), command_2
    ci = (_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert f"( {command_2} )" in ci
    assert "apt-get" not in ci
    script = (_ROOT / "tools" / "test-servers.sh").read_text(encoding="utf-8")
    for package in ("postgresql", "redis-server", "mariadb-server", "chromium"):
        assert re.search(rf"need .*\b{package}$", script, flags=re.M), package


def test_ci_fails_when_the_set_up_script_fails(tmp_path: Path) -> None:
    """.ci/run stops with a failure when the first part of README command 2 fails
    (bash's set -e alone would carry on to "CI passed")."""
    (tmp_path / ".ci").mkdir()
    (tmp_path / "tools").mkdir()
    shutil.copy(_ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "tools" / "test-servers.sh").write_text("exit 3\n")
    done = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "CI passed" not in done.stdout
    assert "README command 2 exited with status 3" in done.stderr


def test_this_machine_has_what_the_suite_needs() -> None:
    """`sh tools/test-servers.sh --check` (changes nothing) finds the servers up and
    chromium installed, as README command 2 leaves the machine."""
    done = subprocess.run(["sh", "tools/test-servers.sh", "--check"], cwd=_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_known_schemes_leave_out_a_refused_scheme() -> None:
    """An unknown scheme's error lists the schemes that work (mariadb://), never one
    that is always refused (mysql://), which still says what to use instead."""
    with pytest.raises(ConfigurationError, match="known schemes") as caught:
        clonestore.open("postgress://x")
    assert "mariadb://" in str(caught.value)
    assert "mysql://" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="use mariadb://"):
        clonestore.open("mysql://root@127.0.0.1:3306/db")


def test_migrations_of_another_engine_are_not_listed_on_sqlite(tmp_path: Path) -> None:
    """On SQLite, 0004_pgvector (PostgreSQL only) is neither applied nor listed, even in a
    database an older version recorded it in; the migrations that apply are all listed."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with clonestore.open(url, create_tables=False) as store:
        applied = store.migrate()
        assert "0001_initial" in applied
        assert "0004_pgvector" not in applied
        database = store.backend.database
        with database.connection_context():
            database.execute_sql(
                "INSERT INTO clonestore_migrations (name, applied) VALUES ('0004_pgvector', ?)",
                ("2026-01-01 00:00:00",),
            )
        names = [row["name"] for row in store.migration_status()]
        assert names == applied
        assert all(row["applied"] for row in store.migration_status())


def test_a_missing_driver_names_its_extra_not_the_url() -> None:
    """Without psycopg2, a CLI command on postgresql:// fails with one line ending in the
    pip install of the postgres extra, with no "check the URL" advice after it."""
    code = (
        "import sys; sys.modules['psycopg2'] = None\n"
        "import clonestore.cli\n"
        "sys.exit(clonestore.cli.main(['status', '--url', 'postgresql://app@127.0.0.1/db']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("clonestore status: error:"), line
    assert line.endswith("pip install 'clonestore[postgres]'"), line
