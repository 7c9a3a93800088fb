"""The conformance kit never destroys data it did not create (on the SQL backends of the
matrix: memory:// lives inside one process, so nothing outlives it to protect)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

import clonestore
from clonestore.testing.wiping import ALLOW_WIPE_OPTION
from tests.matrix import SHARED_BACKENDS, _with_database

#: One quick kit test that uses the store fixture (and so empties the users table), and its
#: module: collecting only that module saves ~0.9 s of CPU a run, and the guard is the
#: kit plugin's, whatever the run collects.
ONE_TEST = "test_get_returns_the_created_record_exactly"
ONE_MODULE = "clonestore.testing.contract.test_users"


@pytest.fixture(params=SHARED_BACKENDS, ids=SHARED_BACKENDS)
def user_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each SQL engine, holding one user of someone's application."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app.db'}"
        drop = None
    else:
        server = request.getfixturevalue("postgres_server_url")
        name = f"cs_app_{secrets.token_hex(5)}"
        admin = psycopg2.connect(server, connect_timeout=10)
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        url, drop = _with_database(server, name), (admin, name)
    with clonestore.open(url) as store:
        store.users.create(email="real@example.com", name="Real Person")
    try:
        yield url
    finally:
        if drop is not None:
            admin, name = drop
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()


def _kit(pytester: pytest.Pytester, url: str, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-q", "--pyargs", ONE_MODULE,
        f"--clonestore-url={url}", "-k", ONE_TEST, *extra,
    )  # fmt: skip


def _users(url: str) -> list[str]:
    with clonestore.open(url, create_tables=False) as store:
        return [user.email for user in store.users.find_many()]


def test_the_kit_refuses_a_database_holding_others_rows(
    pytester: pytest.Pytester, user_database: str
) -> None:
    """A kit run on a database with an application's user stops before deleting anything,
    saying how to proceed; the user is still there afterwards."""
    result = _kit(pytester, user_database)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()[-3000:]
    output = result.stdout.str() + result.stderr.str()
    assert "did not create" in output
    assert ALLOW_WIPE_OPTION in output
    assert _users(user_database) == ["real@example.com"]


def test_the_kit_runs_on_its_own_tables_and_when_told_to_wipe(
    pytester: pytest.Pytester, user_database: str
) -> None:
    """With --clonestore-allow-wipe the kit runs (and empties the tables); later runs on
    the tables it has claimed need no flag."""
    _kit(pytester, user_database, ALLOW_WIPE_OPTION).assert_outcomes(passed=1)
    assert "real@example.com" not in _users(user_database)
    _kit(pytester, user_database).assert_outcomes(passed=1)
