"""Driver and Peewee exceptions, translated to clonestore errors at the boundary.

===============================================  ======================
failure                                          clonestore error
===============================================  ======================
unique / primary key violation                   AlreadyExists (columns: PostgreSQL's
                                                 constraint name; SQLite's primary-key
                                                 code; else found by the backend, see
                                                 ``._duplicates``)
foreign key violation                            ForeignKeyViolation (no values named)
serialization failure, deadlock                  Conflict (InnoDB's deadlock, 1213, has
                                                 rolled back the whole transaction)
wrong password, unknown role, missing database   ConfigurationError (not retryable:
                                                 the URL or the server's set-up is wrong)
lost connection, cannot connect, timeout,        StorageUnavailable
busy database, pool exhausted
anything else                                    BackendError (``orig``)
===============================================  ======================

Messages never carry a password (every secret the backend knows is
redacted) nor the offending values (PostgreSQL's ``DETAIL`` line would show
an email address).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

import peewee
from playhouse.pool import MaxConnectionsExceeded

from clonestore import (
    AlreadyExists,
    BackendError,
    ClonestoreError,
    ConfigurationError,
    Conflict,
    ForeignKeyViolation,
    StorageUnavailable,
)
from clonestore.secrets import redact
from clonestore.spi import PRIMARY_KEY

__all__ = [
    "closed_error",
    "postgres_constraint_of",
    "translate_mariadb",
    "translate_postgres",
    "translate_sqlite",
    "unwrap",
]

# SQLite's exception classes: the standard library's (aiosqlite uses it) and those of the
# driver Peewee chose (pysqlite3 when installed: classes of the same names, not the same).
_DRIVERS: Final = (sqlite3, getattr(peewee, "sqlite3", None) or sqlite3)
_INTEGRITY_ERRORS: Final = tuple({d.IntegrityError for d in _DRIVERS})
_PROGRAMMING_ERRORS: Final = tuple({d.ProgrammingError for d in _DRIVERS})

# SQLite result codes (https://sqlite.org/rescode.html).
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_SQLITE_CANTOPEN: Final = 14
_SQLITE_PROTOCOL: Final = 15
_SQLITE_CONSTRAINT: Final = 19  # the primary code of every constraint failure
_SQLITE_PRIMARY_KEY: Final = 1555  # CONSTRAINT_PRIMARYKEY
_SQLITE_UNIQUE: Final = 2067  # CONSTRAINT_UNIQUE
_SQLITE_FOREIGN_KEY: Final = 787  # CONSTRAINT_FOREIGNKEY

# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_UNIQUE: Final = "23505"
_PG_FOREIGN_KEY: Final = "23503"  # foreign_key_violation
_PG_CONFLICT: Final = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
_PG_UNAVAILABLE_CLASSES: Final = ("08", "53", "57P")  # connection, resources, operator action
_PG_TIMEOUTS: Final = frozenset({"57014", "55P03"})  # query_canceled, lock_not_available
_PG_AUTH: Final = frozenset({"28P01", "28000"})  # invalid_password, invalid_authorization
_PG_NO_DATABASE: Final = "3D000"  # invalid_catalog_name
# What libpq says when it refuses to connect (psycopg2 gives no SQLSTATE then).
_AUTH_MESSAGES: Final = re.compile(
    r"password authentication failed|no password supplied|authentication failed"
    r"|role \"[^\"]*\" does not exist|no pg_hba\.conf entry|permission denied for database"
)
_NO_DATABASE_MESSAGE: Final = re.compile(r'database "([^"]*)" does not exist')

# MariaDB error numbers (https://mariadb.com/kb/en/mariadb-error-code-reference/).
_MY_DUPLICATE: Final = frozenset({1062, 1586})  # ER_DUP_ENTRY, ER_DUP_ENTRY_WITH_KEY_NAME
# ER_NO_REFERENCED_ROW(_2), ER_ROW_IS_REFERENCED(_2): a child names no parent; a parent
# still has children.
_MY_FOREIGN_KEY: Final = frozenset({1216, 1217, 1451, 1452})
_MY_CONFLICT: Final = frozenset({1213, 1020})  # ER_LOCK_DEADLOCK, ER_CHECKREAD
_MY_TIMEOUTS: Final = frozenset({1205, 1969, 3024})  # lock wait, statement timeouts
_MY_AUTH: Final = frozenset({1044, 1045, 1698})  # db access denied, access denied
_MY_NO_DATABASE: Final = 1049
_MY_UNAVAILABLE: Final = frozenset(
    # can't connect, server gone, lost connection, unknown host, killed, shutting down,
    # too many connections, out of resources.
    {2002, 2003, 2005, 2006, 2013, 2055, 1040, 1053, 1077, 1152, 1158, 1159, 1160,
     1161, 1184, 1927, 4031}
)  # fmt: skip


def unwrap(exc: BaseException) -> BaseException:
    """The driver's exception inside a Peewee one (Peewee keeps it as ``orig``,
    sometimes wrapped twice)."""
    while isinstance(exc, peewee.PeeweeException):
        orig = getattr(exc, "orig", None)
        if not isinstance(orig, BaseException):
            break
        exc = orig
    return exc


def closed_error(backend: str) -> ClonestoreError:
    """The error of a call on a closed backend (as memory:// raises)."""
    return ClonestoreError(f"this {backend} store is closed; open a new one with clonestore.open()")


def _first_line(exc: BaseException, secrets: Sequence[str | None]) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__, *secrets)


def translate_sqlite(exc: BaseException, where: str) -> ClonestoreError:
    """A clonestore error for an exception raised by sqlite3 (or Peewee over it)."""
    if isinstance(exc, ClonestoreError):
        return exc
    orig = unwrap(exc)
    message = _first_line(orig, ())
    code = getattr(orig, "sqlite_errorcode", None)
    constraint = _sqlite_constraint(orig, code, message)
    if constraint == _SQLITE_PRIMARY_KEY:
        return AlreadyExists(f"{where}: id already used by another row", columns=PRIMARY_KEY,
                             orig=orig)  # fmt: skip
    if constraint == _SQLITE_UNIQUE:
        # Which unique constraint, SQLite says only in its message, next to nothing
        # structured: the backend finds it (see .sql._duplicates).
        return AlreadyExists(f"{where}: a unique value already used by another row", orig=orig)
    if constraint == _SQLITE_FOREIGN_KEY:
        # SQLite names no constraint: "FOREIGN KEY constraint failed".
        return ForeignKeyViolation(
            f"{where}: a row would point at a row that does not exist (foreign key)",
            orig=orig,
        )
    if code is not None and (code & 0xFF) in (_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_PROTOCOL):
        return StorageUnavailable(
            f"{where}: the database stayed locked by another writer ({message}); "
            "retry, or raise the busy_timeout option",
            orig=orig,
        )
    if code is not None and (code & 0xFF) == _SQLITE_CANTOPEN:
        return StorageUnavailable(f"{where}: cannot open the database file ({message})", orig=orig)
    if isinstance(orig, _PROGRAMMING_ERRORS) and "closed" in message:
        return StorageUnavailable(f"{where}: the connection is closed", orig=orig)
    return BackendError(f"{where}: {message}", orig=orig)


def _sqlite_constraint(orig: BaseException, code: int | None, message: str) -> int | None:
    """The extended result code of a failed constraint (primary key, unique, foreign key;
    None for none of them). The standard library's sqlite3 reports it; pysqlite3 reports
    only the primary code, SQLITE_CONSTRAINT for all of them, and SQLite's fixed English
    message then tells which kind (only the kind: never which columns, never values)."""
    if not isinstance(orig, _INTEGRITY_ERRORS):
        return None
    if code != _SQLITE_CONSTRAINT:
        return code
    if message.startswith("UNIQUE constraint failed"):
        return _SQLITE_UNIQUE  # the primary key too: the backend's look-up tells them apart
    if message.startswith("FOREIGN KEY constraint failed"):
        return _SQLITE_FOREIGN_KEY
    return None


def translate_postgres(
    exc: BaseException, where: str, secrets: Sequence[str | None] = ()
) -> ClonestoreError:
    """A clonestore error for an exception raised by psycopg2, Peewee or the pool."""
    if isinstance(exc, ClonestoreError):
        return exc
    import psycopg2  # only PostgreSQL stores get here; psycopg2 is an optional dependency

    orig = unwrap(exc)
    if isinstance(orig, MaxConnectionsExceeded):
        return StorageUnavailable(
            f"{where}: no pooled connection became free in time (pool exhausted); "
            "retry, or raise pool_size / pool_timeout",
            orig=orig,
        )
    # psycopg2 names the SQLSTATE pgcode, asyncpg (under open_async) sqlstate.
    code: str | None = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
    message = _first_line(orig, secrets)
    diag: Any = getattr(orig, "diag", None) or orig
    if code == _PG_UNIQUE:
        table = getattr(diag, "table_name", None) or "row"
        constraint = getattr(diag, "constraint_name", None) or "a unique constraint"
        return AlreadyExists(
            f"{table}: value already used by another row ({constraint})", orig=orig
        )
    if code == _PG_FOREIGN_KEY:
        table = getattr(diag, "table_name", None) or "row"
        constraint = getattr(diag, "constraint_name", None) or "a foreign key"
        return ForeignKeyViolation(
            f"{table}: a row would point at a row that does not exist ({constraint})",
            orig=orig,
        )
    setup = _setup_error(code, message, where, orig)
    if setup is not None:
        return setup
    if code in _PG_CONFLICT:
        return Conflict(f"{where}: concurrent transactions collided ({message}); retry", orig=orig)
    if code in _PG_TIMEOUTS:
        return StorageUnavailable(f"{where}: timed out ({message})", orig=orig)
    if (code is not None and code.startswith(_PG_UNAVAILABLE_CLASSES)) or (
        code is None and isinstance(orig, (psycopg2.OperationalError, psycopg2.InterfaceError))
    ) or (code is None and isinstance(orig, (OSError, TimeoutError, *_asyncpg_lost()))):
        return StorageUnavailable(f"{where}: the server cannot be reached ({message})", orig=orig)
    return BackendError(f"{where}: {message}", orig=orig)


def postgres_constraint_of(error: BaseException) -> str | None:
    """The name of the constraint a PostgreSQL unique violation names (psycopg2's
    ``diag.constraint_name``, asyncpg's ``constraint_name``), or None."""
    orig = getattr(error, "orig", None) or error
    diag: Any = getattr(orig, "diag", None) or orig
    name = getattr(diag, "constraint_name", None)
    return name if isinstance(name, str) and name else None


def translate_mariadb(
    exc: BaseException, where: str, secrets: Sequence[str | None] = ()
) -> ClonestoreError:
    """A clonestore error for an exception raised by PyMySQL, Peewee or the pool."""
    if isinstance(exc, ClonestoreError):
        return exc
    import pymysql  # only MariaDB stores get here; PyMySQL is an optional dependency

    orig = unwrap(exc)
    if isinstance(orig, MaxConnectionsExceeded):
        return StorageUnavailable(
            f"{where}: no pooled connection became free in time (pool exhausted); "
            "retry, or raise pool_size / pool_timeout",
            orig=orig,
        )
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    code = args[0] if args and isinstance(args[0], int) else None
    message = redact(str(args[1]) if len(args) > 1 else str(orig), *secrets)
    if code in _MY_DUPLICATE:
        # The key is named only in the message ("... for key 'name'"), next to the value:
        # the backend finds the constraint (see SQLBackend's duplicate probe).
        return AlreadyExists(f"{where}: a unique value already used by another row", orig=orig)
    if code in _MY_FOREIGN_KEY:
        # The message names the constraint and its columns, never values.
        return ForeignKeyViolation(
            f"{where}: a row would point at a row that does not exist ({message})", orig=orig
        )
    if code == _MY_NO_DATABASE:
        return ConfigurationError(
            f"{where}: {message}; create the database (CREATE DATABASE ... CHARACTER SET "
            "utf8mb4) or fix the database name in the URL",
            orig=orig,
        )
    if code in _MY_AUTH:
        return ConfigurationError(
            f"{where}: the server refused the login ({message}); fix the user name or "
            "password in the URL, or the user's grants on the server",
            orig=orig,
        )
    if code in _MY_CONFLICT:
        return Conflict(
            f"{where}: concurrent transactions collided ({message}); the transaction was "
            "rolled back, retry it",
            orig=orig,
        )
    if code in _MY_TIMEOUTS:
        return StorageUnavailable(f"{where}: timed out ({message})", orig=orig)
    if (
        code in _MY_UNAVAILABLE
        or isinstance(orig, (pymysql.err.InterfaceError, OSError, TimeoutError))
        or (isinstance(orig, pymysql.err.OperationalError) and (code is None or code >= 2000))
    ):
        return StorageUnavailable(f"{where}: the server cannot be reached ({message})", orig=orig)
    return BackendError(f"{where}: {message}", orig=orig)


def _asyncpg_lost() -> tuple[type[BaseException], ...]:
    """asyncpg's errors of a lost or closed connection (none when it is not installed)."""
    try:
        import asyncpg
    except ImportError:
        return ()
    return (asyncpg.InterfaceError,)


def _setup_error(
    code: str | None, message: str, where: str, orig: BaseException
) -> ConfigurationError | None:
    """A refused login or a missing database: what to fix, as a ConfigurationError."""
    # Without a SQLSTATE the message is libpq's refusal to connect; with one, only
    # the codes count (a statement's own "role ... does not exist" is not a login).
    missing = _NO_DATABASE_MESSAGE.search(message) if code in (None, _PG_NO_DATABASE) else None
    if code == _PG_NO_DATABASE or missing is not None:
        name = missing.group(1) if missing is not None else "the URL's database"
        return ConfigurationError(
            f"{where}: database {name!r} does not exist on the server; create it "
            f"(createdb {name}) or fix the database name in the URL",
            orig=orig,
        )
    if code in _PG_AUTH or (code is None and _AUTH_MESSAGES.search(message) is not None):
        return ConfigurationError(
            f"{where}: the server refused the login ({message.split('FATAL:')[-1].strip()}); "
            "fix the user name or password in the URL, or the role's rights on the server",
            orig=orig,
        )
    return None
