"""Table options (``ephemeral``, ``append_only``) as each SQL engine implements them.

``append_only`` (:class:`clonestore.spi.AppendOnly`) is a refusing trigger, so
that a write from outside clonestore (a psql session, another program) is
refused as well as the store's own:

* SQLite: ``BEFORE UPDATE`` and ``BEFORE DELETE`` triggers that ``RAISE(ABORT)``.
  A purge writes its bound into :data:`SQLITE_PURGES` inside the purging
  transaction; the delete trigger lets through the rows at or under it.
* PostgreSQL: one PL/pgSQL trigger function for ``UPDATE``/``DELETE`` and
  ``TRUNCATE``, and a purge function ``clonestore_purge_<table>(up_to)``; the
  trigger lets a ``DELETE`` through only when it runs inside that function (it
  reads the call stack). The function is not executable by ``PUBLIC`` (only its
  owner, the role that created the tables, and superusers may call it). The
  definition's fingerprint is kept as the trigger function's comment, so it is
  replaced only when the spec changes.
* MariaDB: ``BEFORE UPDATE`` and ``BEFORE DELETE`` triggers that ``SIGNAL``. A
  purge sets the session variables :data:`MARIADB_PURGE_TABLE` and
  :data:`MARIADB_PURGE_UP_TO` around its ``DELETE``; the delete trigger lets
  through the rows at or under that bound. A trigger is replaced only when its
  body changed. (MariaDB fires no trigger on ``TRUNCATE``, as SQLite has none.)

``ephemeral`` is ``UNLOGGED`` on PostgreSQL (no write-ahead log: a crash empties
the table); a table that loses the option is made ``LOGGED`` again. SQLite has
no per-table durability: it does not declare the capability and keeps such
tables as ordinary ones.

Both engines expose :meth:`~clonestore_peewee.sql._backend.SQLBackend.apply_table_options`,
which ``create_tables`` calls and which a migration creating a table can call too.
These are guards against mistakes and ordinary application roles; someone who
may drop triggers may also rewrite rows (the audit plugin's hash chain is what
detects that).
"""

from __future__ import annotations

import hashlib
from typing import Final

from clonestore.spi import TableSpec
from clonestore.spi_reference import append_only_refusal

__all__ = [
    "MARIADB_PURGE_TABLE",
    "MARIADB_PURGE_UP_TO",
    "SQLITE_PURGES",
    "mariadb_append_only",
    "postgres_append_only",
    "postgres_purge_function",
    "refusal_message",
    "sqlite_append_only",
]

#: SQLite: the purge bound of a table while its purge runs (one row per table).
SQLITE_PURGES: Final = "clonestore_purging"


def refusal_message(table: str, action: str) -> str:
    """The message every engine's trigger raises (as the memory backend does)."""
    return str(append_only_refusal(table, action))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --------------------------------------------------------------------------- SQLite


def sqlite_append_only(spec: TableSpec) -> dict[str, str]:
    """The triggers guarding ``spec`` (name -> ``CREATE TRIGGER`` statement)."""
    option = spec.append_only
    assert option is not None
    table = _quote(spec.name)
    allowed = []
    for column in spec.column_names:
        name = _quote(column)
        if column == option.erased_at:
            continue
        if column in option.erasable:
            allowed.append(f"(NEW.{name} IS NULL OR NEW.{name} IS OLD.{name})")
        else:
            allowed.append(f"NEW.{name} IS OLD.{name}")
    update = (
        f"CREATE TRIGGER {_quote(spec.name + '_append_only_update')} BEFORE UPDATE ON {table} "
        f"WHEN NOT ({' AND '.join(allowed)}) BEGIN SELECT RAISE(ABORT, "
        f"{_literal(refusal_message(spec.name, 'UPDATE'))}); END"
    )
    if option.purge_by is None:
        purging = ""
    else:
        purging = (
            f" WHEN NOT EXISTS (SELECT 1 FROM {SQLITE_PURGES} AS p WHERE p.table_name = "
            f"{_literal(spec.name)} AND OLD.{_quote(option.purge_by)} <= p.up_to)"
        )
    delete = (
        f"CREATE TRIGGER {_quote(spec.name + '_append_only_delete')} BEFORE DELETE ON {table}"
        f"{purging} BEGIN SELECT RAISE(ABORT, "
        f"{_literal(refusal_message(spec.name, 'DELETE'))}); END"
    )
    return {f"{spec.name}_append_only_update": update, f"{spec.name}_append_only_delete": delete}


# --------------------------------------------------------------------------- PostgreSQL


def postgres_purge_function(table: str) -> str:
    """The name of the function through which rows of an append-only table leave."""
    return f"clonestore_purge_{table}"


def postgres_append_only(spec: TableSpec) -> tuple[str, str, str]:
    """``(trigger function, fingerprint, DDL)`` guarding ``spec``; the DDL is one
    script to run in a transaction."""
    option = spec.append_only
    assert option is not None
    table = _quote(spec.name)
    guard = f"clonestore_append_only_{spec.name}"
    purge = postgres_purge_function(spec.name)
    allowed = []
    for column in spec.column_names:
        name = _quote(column)
        same = f"NEW.{name}::text IS NOT DISTINCT FROM OLD.{name}::text"
        if column == option.erased_at:
            continue
        if column in option.erasable:
            allowed.append(f"(NEW.{name} IS NULL OR {same})")
        else:
            allowed.append(same)
    refuse = _literal(refusal_message(spec.name, "%"))
    purge_ddl = ""
    purge_check = ""
    if option.purge_by is not None:
        purge_ddl = f"""
CREATE OR REPLACE FUNCTION {purge}(up_to bigint) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE removed bigint;
BEGIN
  DELETE FROM {table} WHERE {_quote(option.purge_by)} <= up_to;
  GET DIAGNOSTICS removed = ROW_COUNT;
  RETURN removed;
END
$fn$;
REVOKE ALL ON FUNCTION {purge}(bigint) FROM PUBLIC;
"""
        purge_check = f"""
  IF TG_OP = 'DELETE' THEN
    GET DIAGNOSTICS stack = PG_CONTEXT;
    IF position({_literal(f"function {purge}(")} in stack) > 0 THEN
      RETURN OLD;
    END IF;
  END IF;"""
    body = f"""{purge_ddl}
CREATE OR REPLACE FUNCTION {guard}() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE stack text;
BEGIN{purge_check}
  IF TG_OP = 'UPDATE' AND {" AND ".join(allowed)} THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION {refuse}, TG_OP USING ERRCODE = 'restrict_violation';
END
$fn$;

DROP TRIGGER IF EXISTS {guard} ON {table};
DROP TRIGGER IF EXISTS {guard}_truncate ON {table};
CREATE TRIGGER {guard} BEFORE UPDATE OR DELETE ON {table}
  FOR EACH ROW EXECUTE FUNCTION {guard}();
CREATE TRIGGER {guard}_truncate BEFORE TRUNCATE ON {table}
  FOR EACH STATEMENT EXECUTE FUNCTION {guard}();
"""
    fingerprint = "clonestore " + hashlib.sha256(body.encode()).hexdigest()[:16]
    ddl = f"{body}\nCOMMENT ON FUNCTION {guard}() IS {_literal(fingerprint)};\n"
    return guard, fingerprint, ddl


# --------------------------------------------------------------------------- MariaDB

#: MariaDB: the session variables a purge sets around its DELETE (table, bound).
MARIADB_PURGE_TABLE: Final = "@clonestore_purge_table"
MARIADB_PURGE_UP_TO: Final = "@clonestore_purge_up_to"


def _backquote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def mariadb_append_only(spec: TableSpec) -> dict[str, tuple[str, str]]:
    """The triggers guarding ``spec``: name -> (body, ``CREATE OR REPLACE TRIGGER``)."""
    option = spec.append_only
    assert option is not None
    table = _backquote(spec.name)
    allowed = []
    for column in spec.column_names:
        name = _backquote(column)
        if column == option.erased_at:
            continue
        if column in option.erasable:
            allowed.append(f"(NEW.{name} IS NULL OR NEW.{name} <=> OLD.{name})")
        else:
            allowed.append(f"NEW.{name} <=> OLD.{name}")

    def refuse(action: str) -> str:
        message = _literal(refusal_message(spec.name, action))
        return f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = {message}"

    update = f"BEGIN IF NOT ({' AND '.join(allowed)}) THEN {refuse('UPDATE')}; END IF; END"
    if option.purge_by is None:
        delete = f"BEGIN {refuse('DELETE')}; END"
    else:
        purging = (
            f"{MARIADB_PURGE_TABLE} <=> {_literal(spec.name)} AND "
            f"OLD.{_backquote(option.purge_by)} <= {MARIADB_PURGE_UP_TO}"
        )
        delete = f"BEGIN IF NOT ({purging}) THEN {refuse('DELETE')}; END IF; END"
    out = {}
    for action, body in (("update", update), ("delete", delete)):
        name = f"{spec.name}_append_only_{action}"
        ddl = (
            f"CREATE OR REPLACE TRIGGER {_backquote(name)} BEFORE {action.upper()} ON {table} "
            f"FOR EACH ROW {body}"
        )
        out[name] = (body, ddl)
    return out
