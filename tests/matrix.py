"""The one backend matrix, and the test session's PostgreSQL and MariaDB: a pytest plugin
the repository's root ``conftest.py`` loads for runs of ``tests/`` and of the kit's
contract modules (``clonestore/testing/contract``, in ``testpaths``) alike, and for no
other run (an example's tests, or a third party's run of the kit from an editable
install, which passes through that conftest).

Every test that uses a store (``store``, ``store_factory``, ``clonestore_store``
from the ``clonestore.testing`` pytest plugin) runs once per backend, and each
contract test a second time per backend through ``open_async`` (``[memory-async]``):
``memory``, ``sqlite`` (a file in the test's tmp_path, a copy of one the session
migrated), ``postgres`` and ``mariadb`` (each a database created for this test
session and dropped at its end).

MariaDB is the server named by ``CLONESTORE_TEST_MARIADB_URL`` (default
``mariadb://root@127.0.0.1:3306/``); an unreachable one fails the tests, which
never skip.

PostgreSQL is the server named by ``CLONESTORE_TEST_POSTGRES_URL`` when set
(an unreachable one fails the tests; they never skip); otherwise a throwaway
server from the ``pgserver`` package.

Shared stores for the plugins' state (``shared_store_url``): the machine's
Redis (``CLONESTORE_TEST_REDIS_URL``, default 127.0.0.1:6379; keys under a
prefix unique to the run, deleted at its end) and a three-master Redis
Cluster the session starts on free ports. Neither ever skips.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import pytest

from clonestore.testing.profiles import load_default_profile

# pytester (tests of the kit run pytest in a subprocess) is loaded by addopts: -p pytester.

POSTGRES_ENV = "CLONESTORE_TEST_POSTGRES_URL"
MARIADB_ENV = "CLONESTORE_TEST_MARIADB_URL"
REDIS_ENV = "CLONESTORE_TEST_REDIS_URL"

#: LangSmith's pytest plugin (installed with langchain-core) is unused here and its import
#: costs ~1.4 s of CPU in every pytest process.
NO_LANGSMITH = "-p no:langsmith_plugin"

# ----------------------------------------------------------------------------- hypothesis


def pytest_configure(config: pytest.Config) -> None:
    """Load the kit's ``dev`` or ``ci`` profile (clonestore.testing.profiles, registered by
    its pytest plugin): ``HYPOTHESIS_PROFILE``, else ``ci`` under ``CI``, else ``dev``.

    Every database this suite's tests use is its own throwaway one (a file in the test's
    tmp_path, the PostgreSQL database created for the session below), written to by kit
    and non-kit tests alike: the kit may empty their tables (``--clonestore-allow-wipe``),
    whatever order the tests run in. tests/test_kit_keeps_data.py runs the kit without it."""
    load_default_profile()
    config.option.clonestore_allow_wipe = True
    # The pytest runs this suite starts (the examples' and the kit's runs) load no LangSmith
    # plugin either (see addopts in pyproject.toml; pytester's runs: the fixture below).
    if NO_LANGSMITH not in os.environ.get("PYTEST_ADDOPTS", ""):
        os.environ["PYTEST_ADDOPTS"] = f"{os.environ.get('PYTEST_ADDOPTS', '')} {NO_LANGSMITH}"
    _share_bytecode(config)


#: Where the Python processes this run starts keep their bytecode (see _share_bytecode).
PYCACHE_PREFIX_ENV = "PYTHONPYCACHEPREFIX"


def _share_bytecode(config: pytest.Config) -> None:
    """Under ``PYTHONDONTWRITEBYTECODE`` (or ``-B``), let the processes this run starts (the
    xdist workers, and every pytest and Python the tests run) cache bytecode, in a
    directory of this run's removed at its end (``PYTHONPYCACHEPREFIX``), never beside the
    sources: what the variable asks for.

    Without a cache each pytest process compiles and assertion-rewrites clonestore's ~200
    modules again (pytest rewrites every module of a distribution with a ``pytest11``
    entry point, clonestore's kit plugin): a small kit run took 3.0 s of CPU, 1.2 s cached,
    and the suite starts dozens (the kit's runs, the examples', pytester's).
    Python checks each cached file against its source's modification time and size, as it
    does in ``__pycache__`` on a machine without the variable."""
    if not sys.dont_write_bytecode or os.environ.get(PYCACHE_PREFIX_ENV):
        return  # caching already (a worker of this run: the variables are its controller's)
    prefix = tempfile.mkdtemp(prefix="clonestore-tests-pycache-")
    os.environ[PYCACHE_PREFIX_ENV] = prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    config.add_cleanup(lambda: shutil.rmtree(prefix, ignore_errors=True))


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytest's own, whose runs load no LangSmith plugin (pytester clears PYTEST_ADDOPTS)."""
    monkeypatch.setenv("PYTEST_ADDOPTS", NO_LANGSMITH)
    return pytester


# ----------------------------------------------------------------------------- the matrix

BACKENDS = ("memory", "sqlite", "postgres", "mariadb")
#: A PostgreSQL primary with two hot standbys the session starts (streaming
#: replication; reads routed to the standbys). It joins the matrix for the
#: contract modules where routing could change an answer (reads right after
#: writes, transactions, queries, pages), not for all of them: CI time.
REPLICATED = "replicated"
REPLICATED_CONTRACT_MODULES = frozenset(
    {
        "test_entities",
        "test_transactions",
        "test_queries",
        "test_paging",
        "test_sessions",
        "test_users",
        "test_spi",
    }
)
#: PostgreSQL 18 with pgvector 0.8, from the ``pgserver`` dev dependency, always (CI's
#: server, named by CLONESTORE_TEST_POSTGRES_URL, lacks pgvector and covers the SQL
#: fallback). It joins the matrix for the modules where vector search or COPY
#: could change an answer.
PGVECTOR = "pgvector"
PGVECTOR_MODULES = frozenset({"test_capabilities", "test_memories", "test_pgvector"})
#: PostgreSQL with the Citus layout (``?layout=citus``: owner-leading keys, email keys in
#: their own table, writes by id naming the owner), on a database of its own on the
#: session's server: the whole kit runs on it, sync only (CI time; the async backend
#: shares every layout code path with the sync one).
CITUS_LAYOUT = "postgres-citus-layout"
#: A real Citus cluster (coordinator URL), opt-in: the kit runs on it (sync) with the
#: Citus layout when this names one. Announced in the session's header.
CITUS_ENV = "CLONESTORE_TEST_CITUS_URL"
CITUS = "citus"
#: PostgreSQL with the partitioned layout (``?layout=partitioned``: turns and the audit
#: log range-partitioned by month), on a database of its own: the modules that touch
#: turns, sessions, the audit log and maintenance run on it (sync; CI time: the other
#: modules never read or write a partitioned table).
PARTITIONED = "postgres-partitioned"
PARTITIONED_MODULES = frozenset(
    {"test_sessions", "test_erasure", "test_transfer", "test_audit", "test_audit_chain",
     "test_maintenance"}
)  # fmt: skip
#: Tests of other modules that also run on the partitioned layout.
PARTITIONED_TESTS = frozenset({"test_capability_time_partitions_remove_what_row_by_row_removes"})
#: The backends whose storage outlives a process and is shared between processes
#: (memory:// lives inside one). Modules that need shared storage override
#: ``clonestore_url`` with ``shared_url``, so the kit's fixtures follow.
SHARED_BACKENDS = tuple(b for b in BACKENDS if b != "memory")


def _url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        path = (tmp_path / "clonestore.db").resolve()
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return "sqlite:///" + str(path)
    if backend == REPLICATED:
        return str(request.getfixturevalue("replicated_url"))
    if backend == PGVECTOR:
        return str(request.getfixturevalue("pgvector_url"))
    if backend == "mariadb":
        return str(request.getfixturevalue("mariadb_url"))
    if backend == CITUS_LAYOUT:
        return with_layout(str(request.getfixturevalue("citus_layout_url")))
    if backend == CITUS:
        return with_layout(os.environ[CITUS_ENV])
    if backend == PARTITIONED:
        return with_layout(str(request.getfixturevalue("partitioned_url")), "partitioned")
    return str(request.getfixturevalue("postgres_url"))


def with_layout(url: str, layout: str = "citus") -> str:
    """``url`` with a layout option (the Citus layout unless told)."""
    return f"{url}{'&' if '?' in url else '?'}layout={layout}"


def pytest_report_header(config: pytest.Config) -> str | None:
    """Say when the kit also runs on a real Citus cluster (CLONESTORE_TEST_CITUS_URL)."""
    url = os.environ.get(CITUS_ENV)
    if not url:
        return None
    from clonestore.secrets import redact_url

    return f"{CITUS_ENV} is set: the contract kit also runs on Citus at {redact_url(url)} [citus]"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The matrix: every test using ``clonestore_url`` (this file's) runs per backend;
    the contract modules of REPLICATED_CONTRACT_MODULES also on the replicated entry, and
    those of PGVECTOR_MODULES on pgvector; each contract test also through ``open_async``
    on every backend of BACKENDS (the kit's ``clonestore_async``, ``[<backend>-async]``)."""
    if "backend_name" not in metafunc.fixturenames:
        return
    module = metafunc.module.__name__.rpartition(".")[2]
    in_contract = metafunc.module.__name__.startswith("clonestore.testing.contract.")
    backends = BACKENDS
    if in_contract and module in REPLICATED_CONTRACT_MODULES:
        backends = (*BACKENDS, REPLICATED)
    if module in PGVECTOR_MODULES:
        backends = (*backends, PGVECTOR)
    if in_contract:
        backends = (*backends, CITUS_LAYOUT, *((CITUS,) if os.environ.get(CITUS_ENV) else ()))
    if module in PARTITIONED_MODULES or metafunc.function.__name__ in PARTITIONED_TESTS:
        backends = (*backends, PARTITIONED)
    if in_contract and "clonestore_async" in metafunc.fixturenames:
        runs = [(b, False) for b in backends] + [(b, True) for b in BACKENDS]
        metafunc.parametrize(
            ("backend_name", "clonestore_async"),
            runs,
            ids=[f"{b}-async" if is_async else b for b, is_async in runs],
            indirect=["clonestore_async"],
        )
        return
    metafunc.parametrize("backend_name", backends, ids=backends)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database the session migrates once; each test's database is a copy of it
    (opening one migrates nothing, but still creates what its plugins add)."""
    import clonestore

    path = tmp_path_factory.mktemp("sqlite-template") / "clonestore.db"
    clonestore.open(f"sqlite:///{path}").close()
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert not leftovers, f"the closed template left {leftovers} beside it (not copied)"
    return path


@pytest.fixture
def clonestore_url(backend_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of the backend under test (overrides the kit plugin's single URL: this
    plugin is registered after it)."""
    return _url(backend_name, request, tmp_path)


@pytest.fixture(params=SHARED_BACKENDS, ids=SHARED_BACKENDS)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a backend whose storage threads and processes share."""
    return _url(request.param, request, tmp_path)


#: Where the cache's L2 and the rate-limit counters may live instead of the backend.
SHARED_STORES = ("redis", "redis_cluster")


@pytest.fixture(params=SHARED_STORES, ids=SHARED_STORES)
def shared_store_url(request: pytest.FixtureRequest) -> str:
    """A shared-store URL with a key prefix of this test's own."""
    base = request.getfixturevalue(
        "redis_server_url" if request.param == "redis" else "redis_cluster_url"
    )
    prefix = f"{request.getfixturevalue('redis_prefix')}{secrets.token_hex(4)}:"
    return f"{base}?prefix={prefix}"


# ----------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    """The key prefix of this test run on shared Redis servers."""
    return f"clonestore-test-{secrets.token_hex(6)}:"


@pytest.fixture(scope="session")
def redis_server_url(redis_prefix: str) -> Iterator[str]:
    """The machine's Redis; this run's keys are deleted at the end (never FLUSHALL)."""
    import redis

    url = os.environ.get(REDIS_ENV) or "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except Exception as exc:
        pytest.fail(f"Redis cannot be reached at {url} ({exc}); set {REDIS_ENV}", pytrace=False)
    try:
        yield url
    finally:
        from tests.servers import delete_prefixed

        delete_prefixed(url, redis_prefix)


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A three-master Redis Cluster on free loopback ports, for this session."""
    from tests.servers import RedisCluster, ServerError

    cluster = RedisCluster()
    try:
        cluster.start()
    except ServerError as exc:
        pytest.fail(f"could not start a Redis Cluster: {exc}", pytrace=False)
    try:
        yield cluster.url
    finally:
        cluster.stop()


# ----------------------------------------------------------------------------- replicas


@pytest.fixture(scope="session")
def postgres_replicas() -> Iterator[Any]:
    """A throwaway PostgreSQL primary and two hot standbys (``pg_basebackup -R``) on free
    loopback ports, from the installed server binaries; stopped at the session's end.
    Never the machine's server. Fails, never skips, when they cannot start."""
    from tests.servers import PostgresPair, ServerError

    pair = PostgresPair()
    try:
        pair.start_primary()
        pair.add_standby()
        pair.add_standby()
    except (ServerError, OSError, subprocess.TimeoutExpired) as exc:
        pair.stop()
        pytest.fail(f"could not start a PostgreSQL primary with hot standbys: {exc}", pytrace=False)
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture(scope="session")
def replicated_url(postgres_replicas: Any) -> str:
    """A database on the replicated pair, reached as a primary with its standbys."""
    pair = postgres_replicas
    name = f"clonestore_test_{secrets.token_hex(6)}"
    _admin_execute(_connect, pair.url(pair.primary_port), f'CREATE DATABASE "{name}"')
    replicas = "&".join(f"replica=127.0.0.1:{port}" for port in pair.standbys)
    return f"{pair.url(pair.primary_port, name)}?{replicas}&replica_check_interval=0.05"


# ----------------------------------------------------------------------------- PostgreSQL


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _socket_url(url: str) -> str:
    """pgserver's ``postgresql://postgres:@/postgres?host=/socket/dir`` with the socket
    directory as the (percent-encoded) host, leaving the query free for options."""
    parts = urlsplit(url)
    socket_dir = dict(parse_qsl(parts.query)).get("host")
    if not socket_dir:
        return url
    return f"postgresql://postgres@{quote(socket_dir, safe='')}{parts.path}"


def _connect(url: str) -> Any:
    import psycopg2

    conn = psycopg2.connect(url, connect_timeout=10)
    conn.autocommit = True
    return conn


def _server_url() -> Iterator[str]:
    """A PostgreSQL server URL (its maintenance database) for the whole session."""
    configured = os.environ.get(POSTGRES_ENV)
    if configured:
        try:
            _connect(configured).close()
        except Exception as exc:
            pytest.fail(
                f"{POSTGRES_ENV} is set but PostgreSQL cannot be reached there: "
                f"{type(exc).__name__}: {exc}".strip(),
                pytrace=False,
            )
        yield configured
        return
    yield from _pgserver_url()


def _pgserver_url() -> Iterator[str]:
    """A throwaway PostgreSQL 18 with pgvector 0.8 from ``pgserver``; fails when it cannot start."""
    tmp = tempfile.mkdtemp(prefix="clonestore-pg-")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR, a fallback
            import pgserver

            # As root, pgserver runs postgres as an unprivileged user who must reach the data.
            os.chmod(tmp, 0o755)
            server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
            uri = _socket_url(server.get_uri())
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(
            "could not start a throwaway PostgreSQL with pgserver "
            f"({type(exc).__name__}: {exc}); set {POSTGRES_ENV} to a server's URL, e.g. "
            f"{POSTGRES_ENV}=postgresql://postgres@127.0.0.1:5432/postgres",
            pytrace=False,
        )
    try:
        yield uri
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """The PostgreSQL server of this test session (its maintenance database)."""
    yield from _server_url()


@pytest.fixture(scope="session")
def pgvector_server_url(postgres_server_url: str) -> Iterator[str]:
    """A PostgreSQL server with pgvector: pgserver's (the session's own when
    CLONESTORE_TEST_POSTGRES_URL is unset, else one more). Fails, never skips."""
    if not os.environ.get(POSTGRES_ENV):
        yield postgres_server_url
        return
    yield from _pgserver_url()


@pytest.fixture(scope="session")
def pgvector_url(pgvector_server_url: str) -> Iterator[str]:
    """A database with pgvector created for this test session, dropped when it ends."""
    yield from _session_database(pgvector_server_url)


@pytest.fixture(scope="session")
def citus_layout_url(postgres_server_url: str) -> Iterator[str]:
    """A database of its own for the Citus layout (created for the session, dropped at
    its end): its schema differs from the plain one, so it is never shared with it."""
    yield from _session_database(postgres_server_url)


@pytest.fixture(scope="session")
def partitioned_url(postgres_server_url: str) -> Iterator[str]:
    """A database of its own for the partitioned layout (created for the session,
    dropped at its end): its tables are partitioned, so it is never shared."""
    yield from _session_database(postgres_server_url)


@pytest.fixture(scope="session")
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A database created for this test session, dropped when it ends."""
    yield from _session_database(postgres_server_url)


def _session_database(postgres_server_url: str) -> Iterator[str]:
    """A throwaway database whose commits do not wait for the WAL to reach the disk
    (``synchronous_commit = off`` for its sessions): what a commit makes visible, and
    when, is the same; only a crash of the server could lose the last ones, and the
    database is dropped at the session's end anyway. The suite's thousands of commits on
    it were as many waits for the disk."""
    name = f"clonestore_test_{secrets.token_hex(6)}"
    yield from _throwaway_database(
        _connect,
        postgres_server_url,
        name,
        create=f'CREATE DATABASE "{name}"',
        then=f'ALTER DATABASE "{name}" SET synchronous_commit TO off',
        drop=f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
    )


def _admin_execute(connect: Any, server: str, sql: str) -> None:
    """Run one statement on a fresh administrative connection to ``server``."""
    admin = connect(server)
    try:
        with admin.cursor() as cur:
            cur.execute(sql)
    finally:
        admin.close()


def _throwaway_database(
    connect: Any, server: str, name: str, *, create: str, drop: str, then: str | None = None
) -> Iterator[str]:
    """Create database ``name`` on ``server`` (and run ``then``), yield its URL, drop it
    afterwards."""
    _admin_execute(connect, server, create)
    try:
        if then is not None:
            _admin_execute(connect, server, then)
        yield _with_database(server, name)
    finally:
        _admin_execute(connect, server, drop)


# ----------------------------------------------------------------------------- MariaDB


def _mariadb_admin(url: str) -> Any:
    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password or ""),
        connect_timeout=10,
        autocommit=True,
    )


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A database created for this test session on the MariaDB server of
    ``CLONESTORE_TEST_MARIADB_URL`` (default 127.0.0.1:3306 as root), dropped when it ends.
    Fails, never skips, when the server cannot be reached."""
    server = os.environ.get(MARIADB_ENV) or "mariadb://root@127.0.0.1:3306/"
    try:
        _mariadb_admin(server).close()  # reachable, or a clear failure here
    except Exception as exc:
        pytest.fail(
            f"MariaDB cannot be reached at {server} ({type(exc).__name__}: {exc}); start it "
            f"or set {MARIADB_ENV}",
            pytrace=False,
        )
    name = f"clonestore_test_{secrets.token_hex(6)}"
    yield from _throwaway_database(
        _mariadb_admin,
        server,
        name,
        create=f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4",
        drop=f"DROP DATABASE IF EXISTS `{name}`",
    )
