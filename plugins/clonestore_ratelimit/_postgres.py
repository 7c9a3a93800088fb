"""PostgreSQL: counters that skip the write-ahead log.

A check is one upsert; on PostgreSQL its cost is dominated by the commit's
WAL flush. Counters are short-lived and cheap to lose, so by default their
tables are ``UNLOGGED``: no WAL, no flush, several times faster. The price,
documented in ``docs/plugins.md``: after a server crash (or on a promoted
replica) the counters start empty, so callers get a fresh window. Admission
stays exact: persistence changes durability, not isolation.
``RateLimitPlugin(durable=True)`` keeps (or makes) them logged.

The SPI has no DDL for this, so it runs on a short-lived psycopg2 connection
of its own, derived from the store URL.
"""

from __future__ import annotations

import logging

from clonestore import BackendError, StorageUnavailable

log = logging.getLogger("clonestore.ratelimit")

__all__ = ["set_persistence"]





def set_persistence(dsn: str, tables: tuple[str, ...], *, durable: bool) -> None:
    """Make ``tables`` logged (``durable``) or unlogged, where they are not already."""
    import psycopg2
    import psycopg2.errors
    from psycopg2 import sql

    wanted = "p" if durable else "u"
    try:
        conn = psycopg2.connect(dsn)
    except psycopg2.OperationalError as exc:
        raise StorageUnavailable(f"ratelimit: cannot connect to PostgreSQL: {exc}") from exc
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('clonestore_ratelimit_ddl'))")
            for table in tables:
                cur.execute(
                    "SELECT relpersistence FROM pg_class WHERE oid = to_regclass(%s)", (table,)
                )
                found = cur.fetchone()
                if found is None or found[0] == wanted:
                    continue
                cur.execute(
                    sql.SQL("ALTER TABLE {} SET {}").format(
                        sql.Identifier(table), sql.SQL("LOGGED" if durable else "UNLOGGED")
                    )
                )
    except psycopg2.errors.InsufficientPrivilege as exc:
        # Not the tables' owner: keep them as they are; the checks stay exact.
        log.warning("ratelimit: counter tables keep their persistence (%s)", exc)
    except psycopg2.Error as exc:
        raise BackendError(f"ratelimit: cannot change table persistence: {exc}", orig=exc) from exc
    finally:
        conn.close()
