"""Row-level security (capability ``row_security``): PostgreSQL holds each user's view
to the user's rows, whatever the statement.

Two roles, two stores:

* **The tables' owner** runs the migrations and the administrative work (``maintain``,
  ``dump``/``load``, signing users up, the Studio): a store opened as it is unscoped
  and sees every row (a table's owner is not bound by its policies unless the table
  forces them; these do not). ``clonestore row-security enable ROLE`` (or
  ``store.backend.enable_row_security(store.tables, ROLE)``), run as the owner,
  installs a policy on every table with an owner column (``users.id``, every
  ``user_id``), turns row-level security on and grants ``ROLE`` the right to read and
  write the store's tables.
* **The application role** (``ROLE``: not the owner, not a superuser, not
  ``BYPASSRLS``) opens its store with ``row_security=on``. Each statement a
  ``store.for_user(id)`` view sends carries ``SET LOCAL clonestore.user_id = 'id'``
  (for its transaction only) in the same round trip, and the
  policies let the statement see and write only rows whose owner column equals the
  setting. Without the setting (an unscoped call, a raw statement outside a view's
  transaction) no owned row is visible and none can be written.

The policy (``clonestore_owner``) is ``USING (col = current_setting('clonestore.user_id',
true)) WITH CHECK (the same)``: reads, updates and deletes see only the user's rows, and
an insert or update leaving a row of another user is refused by the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from clonestore import ConfigurationError
from clonestore.spi import TableSpec

from ..sql._backend import ALL, NONE, ONE
from ..sql._migration_runner import HISTORY_TABLE
from ..sql._text_index import ROWS, TERMS

__all__ = [
    "POLICY",
    "SETTING",
    "check_bound",
    "disable_statements",
    "enable_statements",
    "owner_column",
    "refuse_layout",
    "setting_sql",
]

#: The session setting the policies read: the user a view acts for.
SETTING: Final = "clonestore.user_id"
#: The name of the policy on each owned table.
POLICY: Final = "clonestore_owner"

Execute = Callable[[str, Any, int], Any]

#: The backend's own tables holding users' data, beside the specs' (the text index:
#: tokens of documents and memories), with their owner column.
INDEX_TABLES: Final = {ROWS: "owner", TERMS: "owner"}

#: Why a layout other than ``plain`` offers no row security.
_LAYOUTS: Final = {
    "citus": "its policies are not installed on distributed tables",
    "partitioned": "a partition read by its own name is outside its table's policies, and "
    "the role could not create the months ahead",
}


def refuse_layout(layout: str, asked: bool) -> None:
    """Refuse row security on ``layout`` (not ``plain``) when it is ``asked`` for."""
    if asked:
        why = _LAYOUTS.get(layout, "it is offered on the plain layout only")
        raise ConfigurationError(
            f"row-level security (row_security=on) is not offered with layout={layout} "
            f"({why}); use the plain layout"
        )


def owner_column(spec: TableSpec) -> str | None:
    """The column naming a row's user (``id`` on ``users``), or None: not owned."""
    if spec.name == "users":
        return "id"
    if any(column.name == "user_id" for column in spec.columns):
        return "user_id"
    return None


def setting_sql(user_id: str, interpolated: bool) -> str:
    """The statement setting the acting user for the current transaction, to run just
    before a statement in the same simple query; ``%`` doubled when the statement is
    sent with parameters (psycopg2 interpolates it)."""
    literal = "E'" + user_id.replace("\\", "\\\\").replace("'", "''") + "'"
    if interpolated:
        literal = literal.replace("%", "%%")
    # SET LOCAL rather than set_config(..., true): a utility statement, neither planned
    # nor returning a row (a third less time for the pair on a point read).
    return f"SET LOCAL {SETTING} = {literal}; "


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _role(role: Any) -> str:
    if not isinstance(role, str) or not 0 < len(role) <= 63 or "\x00" in role:
        raise ConfigurationError(f"expected a PostgreSQL role name, got {role!r}")
    return role


def _exists(execute: Execute, name: str) -> bool:
    return execute("SELECT to_regclass(%s)", (name,), ONE)[0] is not None


def _existing(execute: Execute, tables: Sequence[TableSpec]) -> list[TableSpec]:
    names = [spec.name for spec in tables]
    found = execute(
        "SELECT relname FROM pg_class WHERE oid IN "
        "(SELECT to_regclass(quote_ident(t)) FROM unnest(%s::text[]) AS t)",
        (names,),
        ALL,
    )
    present = {row[0] for row in found}
    return [spec for spec in tables if spec.name in present]


def enable_statements(
    execute: Execute, tables: Sequence[TableSpec], role: str, schema: str | None
) -> list[str]:
    """The statements turning row security on for ``tables`` (those that exist) and
    granting ``role`` their use."""
    role_sql = _quoted(_role(role))
    found = execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,), ONE)
    if found is None:
        raise ConfigurationError(f"no PostgreSQL role {role!r}: create it first (CREATE ROLE)")
    statements = [f"GRANT USAGE ON SCHEMA {_quoted(schema or 'public')} TO {role_sql}"]
    # The migration histories (the core's and each plugin's, clonestore_migrations_audit):
    # read when a store opens, to know whether migrations are pending.
    histories = execute(
        "SELECT relname FROM pg_class WHERE relkind IN ('r', 'p') AND pg_table_is_visible(oid) "
        "AND (relname = %s OR relname LIKE %s) ORDER BY relname",
        (HISTORY_TABLE, HISTORY_TABLE.replace("_", "\\_") + "\\_%"),
        ALL,
    )
    for (history,) in histories:
        statements.append(f"GRANT SELECT ON {_quoted(history)} TO {role_sql}")
    owned = {spec.name: owner_column(spec) for spec in _existing(execute, tables)}
    owned.update({name: column for name, column in INDEX_TABLES.items() if _exists(execute, name)})
    for name, column in owned.items():
        table = _quoted(name)
        statements.append(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role_sql}")
        if column is None:
            continue
        check = f"{_quoted(column)} = current_setting('{SETTING}', true)"
        statements += [
            f"DROP POLICY IF EXISTS {POLICY} ON {table}",
            f"CREATE POLICY {POLICY} ON {table} USING ({check}) WITH CHECK ({check})",
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        ]
    return statements


def disable_statements(execute: Execute, tables: Sequence[TableSpec]) -> list[str]:
    """The statements turning row security off for ``tables`` (those that exist)."""
    statements = []
    names = [spec.name for spec in _existing(execute, tables) if owner_column(spec) is not None]
    names += [name for name in INDEX_TABLES if _exists(execute, name)]
    for name in names:
        table = _quoted(name)
        statements += [
            f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
            f"DROP POLICY IF EXISTS {POLICY} ON {table}",
        ]
    return statements


#: The current schema's tables ``owner_column`` names: ``users`` and every ordinary or
#: partitioned table with a ``user_id`` column.
_OWNED_IN_CATALOG: Final = (
    "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
    "AND c.relkind IN ('r', 'p') AND (c.relname = 'users' OR EXISTS (SELECT 1 FROM pg_attribute a "
    "WHERE a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped))"
)


def check_bound(execute: Execute, tables: Sequence[TableSpec] | None, label: str) -> None:
    """Refuse a store opened with ``row_security=on`` whose role the policies would not
    bind (a superuser, ``BYPASSRLS``, the owner of an owned table) or whose owned tables
    have row security off: it would see every user's rows. ``tables`` None (a store
    opened without ``create_tables``, which hands the backend no tables): the owned
    tables are those of the current schema that ``owner_column`` names, read from the
    catalog (``users`` and every table with a ``user_id`` column)."""
    role, superuser, bypass = execute(
        "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        (),
        ONE,
    )
    if superuser or bypass:
        what = "a superuser" if superuser else "BYPASSRLS"
        raise ConfigurationError(
            f"{label}: row_security=on, but role {role!r} is {what}, which row-level security "
            "does not bind; connect as the application role"
        )
    if tables is None:
        owned = [row[0] for row in execute(_OWNED_IN_CATALOG, (), ALL)]
    else:
        owned = [spec.name for spec in tables if owner_column(spec) is not None]
    owned += list(INDEX_TABLES)
    rows = execute(
        "SELECT relname, relrowsecurity, pg_get_userbyid(relowner) = current_user FROM pg_class "
        "WHERE oid IN (SELECT to_regclass(quote_ident(t)) FROM unnest(%s::text[]) AS t)",
        (owned,),
        ALL,
    )
    mine = sorted(name for name, _, is_owner in rows if is_owner)
    if mine:
        raise ConfigurationError(
            f"{label}: row_security=on, but role {role!r} owns {', '.join(mine)}, and a "
            "table's owner is not bound by its policies; connect as the application role"
        )
    off = sorted(name for name, enabled, _ in rows if not enabled)
    if off:
        raise ConfigurationError(
            f"{label}: row_security=on, but row-level security is off on {', '.join(off)}; "
            "run `clonestore row-security enable ROLE` as the tables' owner first"
        )


def run(execute: Execute, statements: Sequence[str]) -> None:
    """Run ``statements`` (no parameters: their % signs stay)."""
    for statement in statements:
        execute(statement, None, NONE)
