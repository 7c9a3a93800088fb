"""0006: what the original schema leaves optional is optional here too.

``database-guidelines.md`` declares ``User.name`` as ``String?`` and creates
memories without an embedding (``embedding Unsupported("vector(384)")?``); no
original document gives voice or face models a name. These columns become
nullable: ``users.name``, ``voice_models.name``, ``face_models.name`` and
``memories.embedding``. Existing rows keep their values, and the columns their
types and collations. (``importance`` defaulting to 0 is the core's default,
not the column's: nothing to migrate.)

``down`` makes them NOT NULL again, which fails while a row holds NULL.

Frozen at this version: tables and columns are written out here.
"""

from __future__ import annotations

from typing import Any

from peewee import MySQLDatabase

_COLUMNS = (
    ("users", "name"),
    ("voice_models", "name"),
    ("face_models", "name"),
    ("memories", "embedding"),
)


_MY_COLUMN = """
SELECT column_type, character_set_name, collation_name FROM information_schema.columns
WHERE table_schema = DATABASE() AND table_name = %s AND column_name = %s
"""


def _mariadb_null(db: Any, null: bool) -> None:
    # playhouse's MySQL migrator re-declares the column without its collation (MariaDB
    # then takes the table's default, which folds case): MODIFY with both kept.
    for table, column in _COLUMNS:
        column_type, charset, collation = db.execute_sql(_MY_COLUMN, (table, column)).fetchone()
        text = f" CHARACTER SET {charset} COLLATE {collation}" if collation else ""
        db.execute_sql(
            f"ALTER TABLE `{table}` MODIFY COLUMN `{column}` {column_type}{text} "
            f"{'NULL' if null else 'NOT NULL'}"
        )


def up(migrator: Any, db: Any) -> None:
    """Drop the NOT NULL constraints."""
    if isinstance(db, MySQLDatabase):
        _mariadb_null(db, True)
        return
    migrator.migrate(*(migrator.drop_not_null(table, column) for table, column in _COLUMNS))


def down(migrator: Any, db: Any) -> None:
    """Bring the NOT NULL constraints back."""
    if isinstance(db, MySQLDatabase):
        _mariadb_null(db, False)
        return
    migrator.migrate(*(migrator.add_not_null(table, column) for table, column in _COLUMNS))
