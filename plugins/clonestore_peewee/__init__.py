"""The ``sqlite://``, ``postgresql://`` and ``mariadb://`` backends, built on Peewee and
playhouse.

Registered by entry point (group ``clonestore``, name ``peewee``) like any
third-party plugin. Tables are Peewee models built from the store's table
specs when it opens; statements are rendered by Peewee once per shape and
then run with the driver's cursor (see :mod:`clonestore_peewee.compiler`).
The schema of the clone domain is versioned by the migrations in
:mod:`clonestore_peewee.migrations`.

Modules: :mod:`.fields` (storage types), :mod:`.models` (specs -> models),
:mod:`.codecs` (value conversion), :mod:`.dialects` (the few engine-specific
operators), :mod:`.compiler` (shapes, slots, rendering), :mod:`.statements`
(the statement of each SPI operation), :mod:`.backend` (the SPI),
:mod:`.sqlite`, :mod:`.postgres` and :mod:`.mariadb` (connections, transactions, health),
:mod:`.errors` (driver errors -> clonestore errors), :mod:`.options`,
:mod:`.migration_runner`.
"""

from __future__ import annotations

from typing import Any

from clonestore import ConfigurationError, hookimpl
from clonestore.spi import Backend

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
    from .sqlite import SqliteBackend

    return SqliteBackend(url, **options)


def open_postgres(url: str, **options: Any) -> Backend:
    """A backend for ``postgresql://user@host:port/dbname`` (pooled connections); with
    ``replicas`` (or ``?replica=`` in the URL), reads go to hot standbys
    (see :mod:`clonestore_peewee.replicas`)."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "postgresql:// needs the psycopg2 driver: pip install 'clonestore[postgres]'"
        ) from None
    from .postgres import PostgresBackend
    from .replicas import REPLICA_OPTIONS, ReplicatedBackend, split_replica_options

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
    connections; see :mod:`clonestore_peewee.mariadb`)."""
    try:
        import pymysql  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "mariadb:// needs the PyMySQL driver: pip install 'clonestore[mariadb]'"
        ) from None
    from .mariadb import MariadbBackend

    return MariadbBackend(url, **options)


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
    from .async_sqlite import AsyncSqliteBackend

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
    from .async_postgres import AsyncPostgresBackend

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
