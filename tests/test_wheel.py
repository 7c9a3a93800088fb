"""The built wheel, installed outside the checkout, can migrate a fresh PostgreSQL database.

Fast and isolated: the wheel is built from a copy of the source tree, then
installed without dependencies into a fresh virtualenv that has no system
site-packages. Its dependencies (attrs, pluggy, peewee, click, sortedcontainers, psycopg2) are made
importable by a ``.pth`` file pointing at a directory of links to just those
distributions from the running environment, so the venv never sees the
editable checkout, and nothing is downloaded but the build backend.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

REPO = Path(__file__).resolve().parents[1]
#: The wheel's own dependencies, read from pyproject.toml so the list cannot drift from
#: what the wheel needs, plus the postgres extra's driver.
DEPENDENCIES = (
    *(
        re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0]
        for requirement in tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
            "dependencies"
        ]
    ),
    "psycopg2-binary",
)
_SKIP = shutil.ignore_patterns(
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "*.db",
    "*.db-wal",
    "*.db-shm",
    ".venv",
    "venv",
)

pytestmark = pytest.mark.timeout(600)


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=500,
        env=env,
        check=False,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the working tree (the checkout is left untouched)."""
    work = tmp_path_factory.mktemp("wheel-build")
    source = work / "src"
    shutil.copytree(REPO, source, symlinks=True, ignore=_SKIP)
    out = work / "dist"
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", out, source, cwd=work)
    (built,) = out.glob("clonestore-*.whl")
    return built


def _link_dependencies(target: Path) -> None:
    """Links to the files of DEPENDENCIES (and only those) from this environment."""
    target.mkdir()
    for name in DEPENDENCIES:
        dist = importlib.metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or () if not str(f).startswith("..")}
        for top in tops:
            origin = Path(str(dist.locate_file(top)))
            link = target / top
            if origin.exists() and not link.exists() and top != "__pycache__":
                link.symlink_to(origin)


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv outside the checkout with the wheel installed."""
    root = tmp_path_factory.mktemp("wheel-venv")
    env_dir = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", env_dir, cwd=root)
    python = env_dir / "bin" / "python"
    _run(
        sys.executable, "-m", "pip", "--python", python, "install",
        "--no-deps", "--no-index", "--disable-pip-version-check", "--quiet", wheel,
        cwd=root,
    )  # fmt: skip
    purelib = Path(
        _run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root
        ).strip()
    )
    deps = root / "deps"
    _link_dependencies(deps)
    (purelib / "clonestore_test_deps.pth").write_text(f"{deps}\n")
    assert sysconfig.get_paths()["purelib"] != str(purelib)
    return env_dir


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
    where = _run(
        python, "-c",
        "import clonestore, clonestore_peewee.migrations as m; "
        "print(clonestore.__file__); print(list(m.__path__)[0])",
        cwd=tmp_path, env=_clean_env(),
    )  # fmt: skip
    for path in where.split():
        assert path.startswith(str(venv)), where  # not the checkout
    output = _run(venv / "bin" / "clonestore", "migrate", "--url", fresh_database,
                  "--plugins", "cache,ratelimit,audit", cwd=tmp_path, env=_clean_env())  # fmt: skip
    assert "applied 0001_initial" in output
    assert "applied audit/0001_initial" in output
    status = _run(venv / "bin" / "clonestore", "status", "--url", fresh_database,
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
    assert {"audit_log", "cache_embeddings", "ratelimit_windows"} <= tables
