"""A wrong password, an unknown role or a missing database is a ConfigurationError saying
what to fix (not StorageUnavailable, which means "retry"), in the API and the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg2
import pytest

import clonestore
from clonestore import ConfigurationError, StorageUnavailable
from tests.matrix import _socket_url

PASSWORD = "right-" + "horse-battery"


def _with(url: str, *, user: str | None = None, password: str | None = None, db: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    name = user or parts.username or "postgres"
    auth = f"{name}:{quote(password, safe='')}@" if password else f"{name}@"
    return urlunsplit((parts.scheme, auth + host, "/" + db, parts.query, ""))


@pytest.fixture(scope="module")
def password_server() -> Iterator[str]:
    """A throwaway PostgreSQL (pgserver) that checks passwords (scram-sha-256)."""
    tmp = tempfile.mkdtemp(prefix="clonestore-pgauth-")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        os.chmod(tmp, 0o755)
        server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
    try:
        url = _socket_url(server.get_uri())
        conn = psycopg2.connect(url)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"ALTER USER postgres PASSWORD '{PASSWORD}'")
            hba = Path(tmp) / "pgdata" / "pg_hba.conf"
            hba.write_text(hba.read_text().replace("trust", "scram-sha-256"))
            cur.execute("SELECT pg_reload_conf()")
        conn.close()
        yield url
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_wrong_password_is_a_configuration_error(password_server: str) -> None:
    """A wrong password: ConfigurationError naming the user and saying to fix the URL,
    the password nowhere; the right one opens."""
    wrong = _with(password_server, password="wrong-" + "guess", db="postgres")
    with pytest.raises(ConfigurationError, match="password") as error:
        clonestore.open(wrong)
    assert not isinstance(error.value, StorageUnavailable)
    assert "fix the user name or password in the URL" in str(error.value)
    assert "wrong-guess" not in str(error.value)
    with clonestore.open(_with(password_server, password=PASSWORD, db="postgres")) as store:
        assert store.health()["ok"]


def test_an_unknown_role_or_database_is_a_configuration_error(
    postgres_server_url: str,
) -> None:
    """An unknown role and a missing database are ConfigurationErrors saying what to fix."""
    with pytest.raises(ConfigurationError, match="nobody_here_i10") as role:
        clonestore.open(_with(postgres_server_url, user="nobody_here_i10", db="postgres"))
    assert "fix the user name or password" in str(role.value)
    with pytest.raises(ConfigurationError, match="createdb no_such_db_i10"):
        clonestore.open(_with(postgres_server_url, db="no_such_db_i10"))


def test_the_cli_says_what_to_fix(postgres_server_url: str) -> None:
    """clonestore status on a missing database: one line, the fix, no "server is running"."""
    url = _with(postgres_server_url, password="not-" + "shown", db="no_such_db_i10")
    done = subprocess.run(
        [sys.executable, "-m", "clonestore.cli", "status", "--url", url],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 1
    assert "createdb no_such_db_i10" in done.stderr
    assert "server is running" not in done.stderr
    assert "not-shown" not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1


def test_store_url_is_redacted(password_server: str) -> None:
    """store.url and repr() hold the URL with the password as ***; the store still logs in
    with the real password (kept private) and works."""
    url = _with(password_server, password=PASSWORD, db="postgres")
    with clonestore.open(url) as store:
        assert store.url == url.replace(quote(PASSWORD, safe=""), "***")
        assert PASSWORD not in store.url + repr(store)
        assert store.users.count() == 0
