"""0005: ids are any short string (UUIDs, cuids, ULIDs, ``"1"``), not only UUIDs.

Callers may choose ids (``create(id=...)``), so id columns hold any string of
1 to 128 characters. On PostgreSQL every ``uuid`` column of the schema (the
primary keys and the columns naming other rows: ``user_id``, ``session_id``,
``deleted_by_cascade``..., in clonestore's tables and its plugins') becomes
``TEXT COLLATE "C"``, so ids order by code point as everywhere else (a UUID's
text orders as the UUID did). On MariaDB the ``VARCHAR(36)`` id columns become
``VARCHAR(128)`` in the same binary collation. SQLite stores ids as ``TEXT``
already: nothing changes there.

Found by the column types (``uuid``; ``varchar(36)`` in ``utf8mb4_nopad_bin``,
which only ids had), not by a list of tables: plugin tables created before
this migration are converted with the core's. Indexes on the columns are
rebuilt by the engine. ``down`` leaves the columns as they are: text holds
every UUID, and a database with chosen ids could not go back.

Frozen at this version: the types are written out here.
"""

from __future__ import annotations

from typing import Any

from peewee import MySQLDatabase, PostgresqlDatabase

#: PostgreSQL and MariaDB only (SQLite stores ids as TEXT already): on SQLite this
#: migration is neither run, recorded nor listed.
ENGINES = ("postgresql", "mariadb")

_PG_UUID_COLUMNS = """
SELECT c.table_name, c.column_name FROM information_schema.columns c
JOIN information_schema.tables t
  ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = current_schema() AND c.data_type = 'uuid' AND t.table_type = 'BASE TABLE'
ORDER BY c.table_name, c.ordinal_position
"""

_MY_ID_COLUMNS = """
SELECT table_name, column_name, is_nullable FROM information_schema.columns
WHERE table_schema = DATABASE() AND column_type = 'varchar(36)'
  AND collation_name = 'utf8mb4_nopad_bin'
ORDER BY table_name, ordinal_position
"""


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _backquoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _postgres_to_text(db: Any) -> None:
    by_table: dict[str, list[str]] = {}
    for table, column in db.execute_sql(_PG_UUID_COLUMNS).fetchall():
        by_table.setdefault(table, []).append(column)
    for table, columns in by_table.items():
        changes = ", ".join(
            f'ALTER COLUMN {_quoted(c)} TYPE TEXT COLLATE "C" USING {_quoted(c)}::text'
            for c in columns
        )
        db.execute_sql(f"ALTER TABLE {_quoted(table)} {changes}")


def _mariadb_widen(db: Any) -> None:
    by_table: dict[str, list[tuple[str, str]]] = {}
    for table, column, nullable in db.execute_sql(_MY_ID_COLUMNS).fetchall():
        by_table.setdefault(table, []).append((column, nullable))
    for table, columns in by_table.items():
        changes = ", ".join(
            f"MODIFY COLUMN {_backquoted(c)} VARCHAR(128) CHARACTER SET utf8mb4 "
            f"COLLATE utf8mb4_nopad_bin {'NULL' if nullable == 'YES' else 'NOT NULL'}"
            for c, nullable in columns
        )
        db.execute_sql(f"ALTER TABLE {_backquoted(table)} {changes}")


def up(migrator: Any, db: Any) -> None:
    """Widen the id columns to text (PostgreSQL) or ``VARCHAR(128)`` (MariaDB)."""
    if isinstance(db, PostgresqlDatabase):
        _postgres_to_text(db)
    elif isinstance(db, MySQLDatabase):
        _mariadb_widen(db)


def down(migrator: Any, db: Any) -> None:
    """Nothing: text id columns hold every UUID (see the module docstring)."""
