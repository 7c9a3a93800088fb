"""Passwords in store URLs never appear in reprs, logs, errors, health output or CLI output."""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
import traceback
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

import clonestore

SECRET = f"S3cr3t-{secrets.token_hex(8)}"


@pytest.fixture(scope="module")
def secret_url(postgres_server_url: str) -> Iterator[str]:
    """A URL with a password, for a role and database created for these tests (pg_hba here
    may trust every login: what matters is that the string never shows)."""
    name = f"cs_secret_{secrets.token_hex(4)}"
    admin = psycopg2.connect(postgres_server_url, connect_timeout=5)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {name} LOGIN PASSWORD %s", (SECRET,))
        cur.execute(f"CREATE DATABASE {name} OWNER {name}")
    parts = urlsplit(postgres_server_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{name}:{SECRET}@{host}" + (f":{parts.port}" if parts.port else "")
    try:
        yield urlunsplit((parts.scheme, netloc, "/" + name, "", ""))
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cur.execute(f"DROP ROLE IF EXISTS {name}")
        admin.close()


def _everything(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(getattr(exc, "orig", ""))


def test_working_store_never_shows_the_password(secret_url: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """repr, health, logs at DEBUG and the results of a working store hold no password."""
    with caplog.at_level(logging.DEBUG):
        store = clonestore.open(secret_url, plugins=["cache", "ratelimit", "audit"])
        try:
            user = store.users.create(email="s@example.com", name="s")
            store.users.get(user.id)
            shown = [repr(store), str(store), repr(store.backend), json.dumps(store.health(),
                     default=str), repr(store.for_user(user.id)), repr(store.options)]
        finally:
            store.close()
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for text in [*shown, logged]:
        assert SECRET not in text


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_unreachable_server_errors_never_show_the_password(where: str) -> None:
    """A failed connection (bad port) is a StorageUnavailable without the password, in its
    message, traceback and chained driver errors; health() of such a store neither."""
    url = (f"postgresql://someone:{SECRET}@127.0.0.1:1/db" if where == "userinfo"
           else f"postgresql://someone@127.0.0.1:1/db?password={SECRET}")
    with pytest.raises(clonestore.StorageUnavailable) as caught:
        clonestore.open(url, connect_timeout=1)
    assert SECRET not in _everything(caught.value)
    with clonestore.open(url, connect_timeout=1, create_tables=False) as store:
        health = store.health()
        assert health["ok"] is False
        assert SECRET not in json.dumps(health, default=str) + repr(store)
        with pytest.raises(clonestore.StorageUnavailable) as caught:
            store.users.count()
        assert SECRET not in _everything(caught.value)


def test_bad_option_error_never_shows_the_password() -> None:
    """A configuration error about the URL's options does not echo its password."""
    with pytest.raises(clonestore.ConfigurationError) as caught:
        clonestore.open(f"postgresql://u:{SECRET}@127.0.0.1:1/db?pool_size=x&bogus=1")
    assert SECRET not in _everything(caught.value)
    with pytest.raises(clonestore.ConfigurationError) as caught:
        clonestore.open(f"nosuch://u:{SECRET}@host/db")
    assert SECRET not in _everything(caught.value)


@pytest.mark.parametrize("command", ["status", "migrate"])
def test_cli_never_shows_the_password(command: str) -> None:
    """`clonestore status|migrate --url` with a password fails on stderr without showing it."""
    done = subprocess.run(
        [sys.executable, "-m", "clonestore.cli", command, "--url",
         f"postgresql://u:{SECRET}@127.0.0.1:1/db"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip()
    assert SECRET not in done.stdout + done.stderr


def test_cli_status_on_a_working_store(secret_url: str) -> None:
    """`clonestore status` on a reachable server prints migrations, not the password."""
    done = subprocess.run([sys.executable, "-m", "clonestore.cli", "status", "--url", secret_url],
                          capture_output=True, text=True, timeout=60)
    assert SECRET not in done.stdout + done.stderr, done
