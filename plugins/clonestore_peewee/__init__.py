"""The ``sqlite://``, ``postgresql://`` and ``mariadb://`` backends, built on Peewee and
playhouse.

Registered by entry point (group ``clonestore``, name ``peewee``) like any
third-party plugin. Tables are Peewee models built from the store's table
specs when it opens; statements are rendered by Peewee once per shape and
then run with the driver's cursor (see :mod:`clonestore_peewee.sql._compiler`).
The schema of the clone domain is versioned by the migrations in
:mod:`clonestore_peewee.migrations`.

Layout, four rooms: :mod:`.sql`, the shared SQL layer, private to the plugin
(storage types, specs -> models, value codecs, the dialect records, the compiler,
the statement of each SPI operation, the SPI itself in ``SQLBackend``, driver
errors -> clonestore errors, options, the migration runner, the async pool);
one package per engine (:mod:`.sqlite`, :mod:`.postgres`, :mod:`.mariadb`:
connections, transactions, health, and what only that engine has), each
importing from :mod:`.sql` and never from each other. Beside them:
:mod:`.migrations`, the schema's scripts, and :mod:`.dialects`, the one public
module (the dialect API for SQL engine authors).
"""

from __future__ import annotations

from typing import Any

from clonestore import ConfigurationError, hookimpl
from clonestore.plugin_helpers import refused_scheme
from clonestore.spi import Backend, capabilities_of

__all__ = [
    "clonestore_async_backends",
    "clonestore_backends",
    "open_async_postgres",
    "open_async_sqlite",
    "open_mariadb",
    "open_mysql",
    "open_postgres",
    "open_sqlite",
]


def open_sqlite(url: str, **options: Any) -> Backend:
    """A backend for ``sqlite:///path.db`` or ``sqlite:///:memory:``."""
    from .sqlite._backend import SqliteBackend

    return SqliteBackend(url, **options)


def open_postgres(url: str, **options: Any) -> Backend:
    """A backend for ``postgresql://user@host:port/dbname`` (pooled connections); with
    ``replicas`` (or ``?replica=`` in the URL), reads go to hot standbys
    (see :mod:`clonestore_peewee.postgres._replicas`)."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "postgresql:// needs the psycopg2 driver: pip install 'clonestore[postgres]'"
        ) from None
    from .postgres._backend import PostgresBackend
    from .postgres._replicas import REPLICA_OPTIONS, ReplicatedBackend, split_replica_options

    if not any(name in options for name in REPLICA_OPTIONS) and "replica" not in url:
        return PostgresBackend(url, **options)
    primary_url, settings, pool_options = split_replica_options(url, options)
    replica_urls = settings.pop("replicas")
    primary = PostgresBackend(primary_url, **pool_options)
    if not replica_urls:
        return primary
    replicas: list[PostgresBackend] = []
    try:
        for replica_url in replica_urls:
            replicas.append(PostgresBackend(replica_url, **pool_options))
        return ReplicatedBackend(primary, replicas, **settings)
    except BaseException:
        for backend in (primary, *replicas):
            backend.close()
        raise


def open_mariadb(url: str, **options: Any) -> Backend:
    """A backend for ``mariadb://user:password@host:port/dbname`` (pooled PyMySQL
    connections; see :mod:`clonestore_peewee.mariadb._backend`)."""
    try:
        import pymysql  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "mariadb:// needs the PyMySQL driver: pip install 'clonestore[mariadb]'"
        ) from None
    from .mariadb._backend import MariadbBackend

    return MariadbBackend(url, **options)


@refused_scheme
def open_mysql(url: str, **options: Any) -> Backend:
    """Refuses ``mysql://``: only MariaDB is tested, and MySQL 8 differs where meaning
    is at stake (its JSON type reorders keys, its collations and upserts differ)."""
    raise ConfigurationError(
        "mysql:// is not supported: clonestore's MySQL-family backend is tested on "
        "MariaDB only (use mariadb://user:password@host:port/dbname for a MariaDB "
        "server); MySQL 8 is not tested, and differs in JSON, collations and locking"
    )


def open_async_sqlite(url: str, **options: Any) -> Backend:
    """``sqlite://`` under ``open_async``: the SQLite backend on aiosqlite."""
    try:
        import aiosqlite  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "sqlite:// under open_async needs aiosqlite: pip install 'clonestore[async]'"
        ) from None
    from .sqlite._async import AsyncSqliteBackend

    return AsyncSqliteBackend(url, **options)


def open_async_postgres(url: str, **options: Any) -> Backend:
    """``postgresql://`` under ``open_async``: the PostgreSQL backend on asyncpg."""
    try:
        import asyncpg  # noqa: F401
        import psycopg2  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "postgresql:// under open_async needs asyncpg and psycopg2: "
            "pip install 'clonestore[async,postgres]'"
        ) from None
    from .postgres._async import AsyncPostgresBackend

    return AsyncPostgresBackend(url, **options)


@hookimpl
def clonestore_async_backends() -> dict[str, Any]:
    """Serve ``sqlite://`` (aiosqlite) and ``postgresql://`` (asyncpg) under ``open_async``
    without blocking the event loop."""
    return {
        "sqlite": open_async_sqlite,
        "postgresql": open_async_postgres,
        "postgres": open_async_postgres,
    }


@hookimpl
def clonestore_backends() -> dict[str, Any]:
    """Serve ``sqlite://``, ``postgresql://``, ``postgres://`` and ``mariadb://`` URLs
    (and refuse ``mysql://`` with a clear message)."""
    return {
        "sqlite": open_sqlite,
        "postgresql": open_postgres,
        "postgres": open_postgres,
        "mariadb": open_mariadb,
        "mysql": open_mysql,
    }


def _partitions_ahead(run: Any) -> None:
    """Create the months ahead of time on PostgreSQL's partitioned layout."""
    run.advance(len(run.store.backend.maintain_partitions(run.store.clock())))


@hookimpl
def clonestore_maintenance_tasks(store: Any) -> list[Any]:
    """On PostgreSQL's partitioned layout (``layout=partitioned``): ``partitions``,
    which creates the monthly partitions due ahead of time (its count is of
    partitions created, not rows)."""
    if "time_partitions" not in capabilities_of(store.backend):
        return []
    from clonestore.maintenance import MaintenanceTask

    from .postgres._backend import PostgresBackend

    if not isinstance(store.backend, PostgresBackend):
        return []

    return [
        MaintenanceTask(
            name="partitions",
            run=_partitions_ahead,
            description="create the monthly partitions of turns and the audit log ahead of time",
        )
    ]
