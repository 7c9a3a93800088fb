"""0008: foreign keys for the relations of the original schema.

Owned rows point at their user (``voice_models``, ``face_models``, ``sessions``,
``turns``, ``documents``, ``memories``: ``user_id`` -> ``users.id``), turns at their
session and memories at the session they came from (``session_id`` ->
``sessions.id``; ``ON DELETE SET NULL`` there, the original's ``onDelete: SetNull``).
The others are ``NO ACTION``: the engine refuses to orphan a row, and the core
removes what points at a row itself, first (``erase_user``, ``sessions.delete``), so
plugins and the audit see every row it removes. Soft-deleted rows stay rows: they
may be pointed at. The constraints are named ``fk_<table>_<column>``.

Before adding anything, the migration counts the rows that point at nothing (an
orphan: a ``user_id`` naming no user, a ``session_id`` naming no session). If there
are any it refuses, naming the counts per relation and the command that lists the
rows (``clonestore orphans --url URL``), and changes nothing; once they are removed
(or, for a memory's session, set to NULL) it can run again. A constraint already
there is kept, so an interrupted run (MariaDB commits each ``ALTER TABLE``) can run
again too.

PostgreSQL and MariaDB add the constraints with ``ALTER TABLE``. SQLite cannot: each
table is rebuilt with them (created anew with the same columns, rows copied with
their rowids, the old table dropped, the new one renamed, its indexes and triggers
re-created); the SQLite backend runs migrations with enforcement off, as SQLite's
own procedure says, and this migration ends with ``PRAGMA foreign_key_check``.
Rebuilding copies the tables: on a big SQLite file it takes a while and room.

``down`` removes the constraints (SQLite: rebuilds the tables without them).

Frozen at this version: the relations are written out here (``clonestore.records``
declares the live ones; a later layout, such as Citus's, adapts them in a migration
of its own).
"""

from __future__ import annotations

from typing import Any, Final

from peewee import MySQLDatabase, PostgresqlDatabase

#: (table, column, referenced table, ON DELETE), parents before the tables pointing at
#: them (the order SQLite rebuilds them in).
RELATIONS: Final = (
    ("voice_models", "user_id", "users", "NO ACTION"),
    ("face_models", "user_id", "users", "NO ACTION"),
    ("sessions", "user_id", "users", "NO ACTION"),
    ("documents", "user_id", "users", "NO ACTION"),
    ("turns", "user_id", "users", "NO ACTION"),
    ("turns", "session_id", "sessions", "NO ACTION"),
    ("memories", "user_id", "users", "NO ACTION"),
    ("memories", "session_id", "sessions", "SET NULL"),
)

_ORPHANS = (
    "SELECT COUNT(*) FROM {table} c WHERE c.{column} IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{column})"
)


def _name(table: str, column: str) -> str:
    return f"fk_{table}_{column}"


def _clause(table: str, column: str, parent: str, on_delete: str) -> str:
    return (
        f'CONSTRAINT "{_name(table, column)}" FOREIGN KEY ("{column}") '
        f'REFERENCES "{parent}" ("id") ON DELETE {on_delete}'
    )


def orphan_counts(db: Any) -> dict[str, int]:
    """Rows pointing at nothing, per relation (``"turns.session_id"``), those with any."""
    counts: dict[str, int] = {}
    for table, column, parent, _ in RELATIONS:
        query = _ORPHANS.format(table=table, column=column, parent=parent)
        (count,) = db.execute_sql(query).fetchone()
        if count:
            counts[f"{table}.{column}"] = int(count)
    return counts


def _refuse_orphans(migrator: Any, db: Any) -> None:
    counts = orphan_counts(db)
    if not counts:
        return
    label = getattr(getattr(migrator, "backend", None), "label", None) or "URL"
    listed = ", ".join(f"{relation}: {count}" for relation, count in counts.items())
    total = sum(counts.values())
    raise RuntimeError(
        f"migration 0008_foreign_keys refused: {total} row(s) point at rows that do not "
        f"exist ({listed}); nothing was changed. List them with `clonestore orphans --url "
        f"{label}`, remove them (or set a memory's session_id to NULL), then migrate again"
    )


# --------------------------------------------------------------------------- PostgreSQL

_PG_HAS = "SELECT 1 FROM pg_constraint WHERE conname = %s AND conrelid = to_regclass(%s)"


def _postgres(db: Any, add: bool) -> None:
    for table, column, parent, on_delete in RELATIONS:
        name = _name(table, column)
        present = db.execute_sql(_PG_HAS, (name, table)).fetchone() is not None
        if add and not present:
            db.execute_sql(
                f'ALTER TABLE "{table}" ADD {_clause(table, column, parent, on_delete)}'
            )
        elif not add and present:
            db.execute_sql(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')


# --------------------------------------------------------------------------- MariaDB

_MY_HAS = (
    "SELECT 1 FROM information_schema.table_constraints WHERE constraint_schema = DATABASE() "
    "AND table_name = %s AND constraint_name = %s AND constraint_type = 'FOREIGN KEY'"
)


def _mariadb(db: Any, add: bool) -> None:
    for table, column, parent, on_delete in RELATIONS:
        name = _name(table, column)
        present = db.execute_sql(_MY_HAS, (table, name)).fetchone() is not None
        if add and not present:
            db.execute_sql(
                f"ALTER TABLE `{table}` ADD CONSTRAINT `{name}` FOREIGN KEY (`{column}`) "
                f"REFERENCES `{parent}` (`id`) ON DELETE {on_delete}"
            )
        elif not add and present:
            db.execute_sql(f"ALTER TABLE `{table}` DROP FOREIGN KEY `{name}`")


# --------------------------------------------------------------------------- SQLite

def _sqlite_rebuild(db: Any, table: str, clauses: list[str], add: bool) -> None:
    """Rebuild ``table`` with ``clauses`` added (``add``) or removed."""
    (sql,) = db.execute_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    if add:
        clauses = [c for c in clauses if c not in sql]
        if not clauses:
            return
        body = sql.rstrip().rstrip(";").rstrip()
        assert body.endswith(")"), body
        new_sql = body[:-1] + ", " + ", ".join(clauses) + ")"
    else:
        new_sql = sql
        for clause in clauses:
            new_sql = new_sql.replace(", " + clause, "")
        if new_sql == sql:
            return
    temporary = f"{table}__fk"
    _, paren, columns_and_constraints = new_sql.partition("(")  # after CREATE TABLE "name"
    new_sql = f'CREATE TABLE "{temporary}" {paren}{columns_and_constraints}'
    extras = [
        row[0]
        for row in db.execute_sql(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') "
            "AND sql IS NOT NULL ORDER BY type, name",
            (table,),
        ).fetchall()
    ]
    columns = ", ".join(
        f'"{row[1]}"' for row in db.execute_sql(f'PRAGMA table_info("{table}")').fetchall()
    )
    db.execute_sql(f'DROP TABLE IF EXISTS "{temporary}"')
    db.execute_sql(new_sql)
    db.execute_sql(
        f'INSERT INTO "{temporary}" (rowid, {columns}) SELECT rowid, {columns} FROM "{table}"'
    )
    db.execute_sql(f'DROP TABLE "{table}"')
    db.execute_sql(f'ALTER TABLE "{temporary}" RENAME TO "{table}"')
    for statement in extras:
        db.execute_sql(statement)


def _sqlite(db: Any, add: bool) -> None:
    by_table: dict[str, list[str]] = {}
    for table, column, parent, on_delete in RELATIONS:
        by_table.setdefault(table, []).append(_clause(table, column, parent, on_delete))
    for table, clauses in by_table.items():
        _sqlite_rebuild(db, table, clauses, add)
    broken = db.execute_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"migration 0008_foreign_keys: PRAGMA foreign_key_check: {broken[:5]}")


def up(migrator: Any, db: Any) -> None:
    """Refuse if rows point at nothing; else add the foreign keys."""
    _refuse_orphans(migrator, db)
    if isinstance(db, PostgresqlDatabase):
        _postgres(db, True)
    elif isinstance(db, MySQLDatabase):
        _mariadb(db, True)
    else:
        _sqlite(db, True)


def down(migrator: Any, db: Any) -> None:
    """Remove the foreign keys."""
    if isinstance(db, PostgresqlDatabase):
        _postgres(db, False)
    elif isinstance(db, MySQLDatabase):
        _mariadb(db, False)
    else:
        _sqlite(db, False)
