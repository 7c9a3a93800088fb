"""PostgreSQL's guard on the audit log: a trigger that keeps it append-only.

UPDATE and DELETE (and TRUNCATE) of ``audit_log`` rows are refused, with two
exceptions that cannot weaken the hash chain:

* rows are removed only by the function ``clonestore_audit_purge(up_to)``
  (the trigger reads the call stack to know), which ``audit.purge()`` calls
  after recording an anchor;
* an UPDATE may erase personal fields (set them, and the salt, to NULL) and
  nothing else: that is ``erase_user``'s redaction, which the chain is built
  to survive.

The SPI has no raw SQL, so this module opens its own short-lived psycopg2
connection from the store URL to install the guard and to purge. The guard
stops mistakes and ordinary application roles; the chain (``verify()``) is
what detects tampering by someone who can also drop triggers.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from clonestore import BackendError, StorageUnavailable

log = logging.getLogger("clonestore.audit")

__all__ = ["GUARD", "PURGE_FUNCTION", "install_guard", "purge_up_to"]

GUARD: Final = "clonestore_audit_guard_v1"
PURGE_FUNCTION: Final = "clonestore_audit_purge"
_PERSONAL_NULL: Final = " AND ".join(
    f"NEW.{name} IS NULL"
    for name in (
        "salt",
        "actor_id",
        "subject_id",
        "ip_address",
        "user_agent",
        "changes",
        "details",
        "error_message",
    )
)
_UNCHANGED: Final = " AND ".join(
    f"NEW.{name}::text IS NOT DISTINCT FROM OLD.{name}::text"
    for name in (
        "id",
        "seq",
        "created_at",
        "action",
        "resource_type",
        "resource_id",
        "result",
        "error_type",
        "request_id",
        "info",
        "personal_digest",
        "prev_hash",
        "hash",
    )
)
_DDL: Final = f"""
CREATE OR REPLACE FUNCTION {PURGE_FUNCTION}(up_to bigint) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE removed bigint;
BEGIN
  DELETE FROM audit_log WHERE seq <= up_to;
  GET DIAGNOSTICS removed = ROW_COUNT;
  RETURN removed;
END
$fn$;

CREATE OR REPLACE FUNCTION {GUARD}() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE stack text;
BEGIN
  GET DIAGNOSTICS stack = PG_CONTEXT;
  IF position('function {PURGE_FUNCTION}(' in stack) > 0 AND TG_OP = 'DELETE' THEN
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND {_UNCHANGED} AND {_PERSONAL_NULL} THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only: % refused (rows are removed only by '
    '{PURGE_FUNCTION}(); an update may only erase personal fields)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$fn$;

CREATE TRIGGER {GUARD} BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION {GUARD}();
CREATE TRIGGER {GUARD}_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION {GUARD}();
"""





def _connect(dsn: str) -> Any:
    import psycopg2
    import psycopg2.errors

    try:
        return psycopg2.connect(dsn)
    except psycopg2.OperationalError as exc:
        raise StorageUnavailable(f"audit: cannot connect to PostgreSQL: {exc}", orig=exc) from exc


def install_guard(dsn: str) -> bool:
    """Install the trigger and the purge function once; whether the log is guarded.

    A role that may not create them (the application's role is often not the
    tables' owner) gets a warning: install them once with the owner's role by
    opening a store as that role.
    """
    import psycopg2
    import psycopg2.errors

    conn = _connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = to_regclass('audit_log')",
                (GUARD,),
            )
            if cur.fetchone() is not None:
                return True
            # Stores opening at once must not race on CREATE TRIGGER.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (GUARD,))
            cur.execute("SELECT to_regclass('audit_log') IS NOT NULL")
            if not cur.fetchone()[0]:
                return False
            cur.execute(
                "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = 'audit_log'::regclass",
                (GUARD,),
            )
            if cur.fetchone() is None:
                cur.execute(_DDL)
        return True
    except psycopg2.errors.InsufficientPrivilege as exc:
        log.warning("audit: audit_log is not guarded by a trigger (%s)", exc)
        return False
    except psycopg2.Error as exc:
        raise BackendError(f"audit: cannot install the PostgreSQL guard: {exc}", orig=exc) from exc
    finally:
        conn.close()


def purge_up_to(dsn: str, seq: int) -> int:
    """Remove the rows up to ``seq`` through the purge function; how many."""
    import psycopg2
    import psycopg2.errors

    conn = _connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"SELECT {PURGE_FUNCTION}(%s)", (seq,))
            removed: int = cur.fetchone()[0]
        return removed
    except psycopg2.Error as exc:
        raise BackendError(f"audit: purge failed: {exc}", orig=exc) from exc
    finally:
        conn.close()
