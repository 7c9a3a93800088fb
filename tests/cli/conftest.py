"""The CLI tests' stores and runner, on the one backend matrix.

``cli_url`` follows ``clonestore_url`` (memory, sqlite, postgres) with an empty
database of its own: a named ``memory://`` database shared in this process, the
test's SQLite file, or a PostgreSQL database created for the test. ``run``
runs the command the way each backend allows: in process with click's
CliRunner on memory:// (its data lives only in this process), as a real
``clonestore`` subprocess on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

import clonestore
from clonestore.cli import cli
from tests.test_migrations import _fresh_postgres  # a fresh database, dropped after

PLUGINS = ("cache", "ratelimit", "audit")


@attrs.frozen
class Ran:
    """What a command did: its exit status and what it printed."""

    exit_code: int
    stdout: str
    stderr: str


Run = Callable[..., Ran]


@pytest.fixture
def cli_url(clonestore_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database on the backend under test, for the command to open."""
    if clonestore_url.startswith("memory:"):
        yield f"memory://cli-{secrets.token_hex(4)}"
    elif clonestore_url.startswith("sqlite:"):
        yield clonestore_url
    else:
        yield from _fresh_postgres(request.getfixturevalue("postgres_server_url"))


@pytest.fixture
def keeper(cli_url: str) -> Iterator[clonestore.Store]:
    """A store open on ``cli_url`` for the whole test (it keeps a named memory://
    database alive), to arrange and check data with. It has the audit and
    rate-limit plugins, and all the plugins' tables; not the cache, whose entity
    cache would not see the command's writes on memory://."""
    # Every plugin's tables exist from here on; this store stays open so that a
    # named memory:// database (dropped with its last store) lives for the test.
    with clonestore.open(cli_url, plugins=list(PLUGINS)), clonestore.open(
        cli_url, plugins=["ratelimit", "audit"]
    ) as store:
        yield store


def _subprocess(*args: str, input: str | None = None) -> Ran:
    script = Path(sys.executable).with_name("clonestore")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "clonestore.cli"]
    done = subprocess.run(
        [*command, *args], input=input, capture_output=True, text=True, timeout=120,
        env=dict(os.environ), check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def _in_process(*args: str, input: str | None = None) -> Ran:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def run(cli_url: str) -> Run:
    """``run(*args, input=None)``: the ``clonestore`` command with ``--url cli_url``
    appended to args, in process on memory://, as a subprocess elsewhere."""
    runner = _in_process if cli_url.startswith("memory:") else _subprocess

    def run(*args: str, input: str | None = None) -> Ran:
        return runner(*args, "--url", cli_url, input=input)

    return run
