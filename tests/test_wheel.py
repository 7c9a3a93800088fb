"""The built wheel, installed outside the checkout (see :mod:`tests.installed_wheel`),
ships what it must and can migrate a fresh PostgreSQL database."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from .installed_wheel import build_wheel, install_wheel, run

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the working tree (the checkout is left untouched)."""
    return build_wheel(tmp_path_factory)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the checkout with the wheel installed."""
    return install_wheel(tmp_path_factory)


@pytest.fixture
def fresh_database(postgres_server_url: str) -> Iterator[str]:
    name = f"cs_wheel_{secrets.token_hex(5)}"
    admin = psycopg2.connect(postgres_server_url, connect_timeout=10)
    admin.autocommit = True
    try:
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(postgres_server_url)
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.pop("CLONESTORE_URL", None)
    return env


def test_wheel_ships_the_migrations(wheel: Path) -> None:
    """The wheel contains the migration scripts as clonestore_peewee.migrations, and each
    built-in plugin's as clonestore_<plugin>.migrations."""
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    for package in ("clonestore_peewee", "clonestore_cache", "clonestore_ratelimit",
                    "clonestore_audit"):  # fmt: skip
        assert f"{package}/migrations/0001_initial.py" in names
        assert f"{package}/migrations/__init__.py" in names


def test_wheel_ships_py_typed_for_every_package(wheel: Path) -> None:
    """Every top-level package in the wheel (the core and each plugin) has its py.typed."""
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {n.split("/")[0] for n in names if n.endswith("/__init__.py") and n.count("/") == 1}
    assert {"clonestore", "clonestore_memory", "clonestore_peewee"} <= packages
    assert sorted(p for p in packages if f"{p}/py.typed" not in names) == []


def test_installed_wheel_migrates_a_fresh_postgres_database(
    venv: Path, fresh_database: str, tmp_path: Path
) -> None:
    """`clonestore migrate --plugins cache,ratelimit,audit` from the installed wheel migrates
    a fresh PostgreSQL database, the plugins' tables included."""
    python = venv / "bin" / "python"
    where = run(
        python, "-c",
        "import clonestore, clonestore_peewee.migrations as m; "
        "print(clonestore.__file__); print(list(m.__path__)[0])",
        cwd=tmp_path, env=_clean_env(),
    )  # fmt: skip
    for path in where.split():
        assert path.startswith(str(venv)), where  # not the checkout
    output = run(venv / "bin" / "clonestore", "migrate", "--url", fresh_database,
                  "--plugins", "cache,ratelimit,audit", cwd=tmp_path, env=_clean_env())  # fmt: skip
    assert "applied 0001_initial" in output
    assert "applied audit/0001_initial" in output
    status = run(venv / "bin" / "clonestore", "status", "--url", fresh_database,
                  cwd=tmp_path, env=_clean_env())  # fmt: skip
    assert "[x] 0001_initial" in status
    conn = psycopg2.connect(fresh_database)
    try:
        cur = conn.cursor()
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    assert {"users", "sessions", "turns", "memories", "clonestore_migrations"} <= tables
    assert {"audit_entries", "audit_heads", "cache_embeddings", "ratelimit_windows"} <= tables
