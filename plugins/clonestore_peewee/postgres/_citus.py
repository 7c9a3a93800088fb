"""The Citus layout (``layout=citus``): the schema in the form Citus can distribute.

``postgresql://.../db?layout=citus`` (or ``clonestore migrate`` with that URL)
applies the core's migrations as usual, then converts the schema, idempotently:

* every user-owned table (:data:`OWNED`) gets the owner-leading primary key
  ``(user_id, id)``; the key of turns becomes ``(user_id, session_id,
  turn_index)`` (a turn's owner is always its session's);
* foreign keys from one user-owned table to another lead with ``user_id`` on
  both sides (Citus requires the distribution column in them);
* email uniqueness moves from ``users`` (which is distributed by ``id``) to the
  lookup table ``user_email_keys (email_key PRIMARY KEY, user_id)``: the
  backend writes it in the user's transaction, ``find_by_email`` reads it
  first, erasure removes it (see :class:`EmailKeys`). Live users' keys are
  copied into it when an existing database is converted;
* when the database has the ``citus`` extension, the tables are distributed:
  ``users`` by ``id``, the owned tables by ``user_id`` co-located with
  ``users``, ``session_totals`` (one row per user, its id the user's) by ``id``
  co-located with ``users``, ``user_email_keys`` by ``email_key``, ``specializations`` as a
  reference table. Without the extension (plain PostgreSQL) this step is
  skipped and the key shapes are the same, which is how the project's tests run
  the layout.

Frozen: the table and column names are written out here, as in a migration.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from clonestore import AlreadyExists
from clonestore.query import And, Cond, Expr
from clonestore.spi import Row

__all__ = [
    "EMAIL_KEYS",
    "LAYOUTS",
    "OWNED",
    "REFERENCE",
    "EmailKeys",
    "apply_layout",
    "by_id",
    "email_lookup",
    "layout",
    "shard_constraint",
]

log = logging.getLogger("clonestore.postgresql")

#: The layouts of the ``layout`` option (``partitioned``: see :mod:`._partitions`).
LAYOUTS: Final = ("plain", "citus", "partitioned")
#: The user-owned tables, distributed by ``user_id`` co-located with ``users``.
OWNED: Final = ("voice_models", "face_models", "sessions", "turns", "documents", "memories")
#: Tables whose id is the user's id (the core's per-user totals): distributed by ``id``,
#: co-located with ``users``; their keys need no change.
USER_KEYED: Final = ("session_totals",)
#: Tables copied to every node.
REFERENCE: Final = ("specializations",)
#: The lookup table that keeps emails unique among live users across shards.
EMAIL_KEYS: Final = "user_email_keys"
_EMAIL_KEYS_PKEY: Final = f"{EMAIL_KEYS}_pkey"
#: turns' unique key, owner-leading on this layout (the name is kept).
_TURNS_KEY: Final = "uq_turns_session_id_turn_index"
_USERS_EMAIL_INDEX: Final = "uq_users_email_key"


def layout(value: Any) -> str:
    """The ``layout`` option: ``plain`` (the default), ``citus`` or ``partitioned``
    (one at a time: ``citus,partitioned`` is refused, saying why)."""
    if isinstance(value, str) and {"citus", "partitioned"} <= set(value.split(",")):
        raise ValueError(
            "citus and partitioned do not combine: a distributed table's keys must lead "
            "with the owner and a partitioned one's must include the time, which this "
            "layout does not build; choose one"
        )
    if value not in LAYOUTS:
        raise ValueError(f"expected one of {', '.join(LAYOUTS)}")
    return str(value)


Execute = Callable[[str, Any, int], Any]
_ONE, _ALL, _NONE = 1, 2, 4  # the SQL backend's fetch modes (ONE, ALL, NONE)


def _columns(execute: Execute, constraint_sql: str, params: Sequence[Any]) -> list[str] | None:
    row = execute(constraint_sql, tuple(params), _ONE)
    return None if row is None or row[0] is None else list(row[0])


_PRIMARY_KEY: Final = """
SELECT c.conname, ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i)
       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_constraint c WHERE c.conrelid = to_regclass(%s) AND c.contype = 'p'
"""

_INDEX_COLUMNS: Final = """
SELECT ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY AS k(n, o)
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_index i WHERE i.indexrelid = to_regclass(%s)
"""

#: Foreign keys whose referenced table is a user-owned one: name, table, columns,
#: referenced table, referenced columns, ON DELETE action.
_FOREIGN_KEYS: Final = """
SELECT c.conname, c.conrelid::regclass::text,
  ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(n, i)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
  c.confrelid::regclass::text,
  ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(n, i)
        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),
  c.confdeltype, c.condeferrable, c.condeferred
FROM pg_constraint c
WHERE c.contype = 'f' AND c.confrelid::regclass::text = ANY(%s)
"""

_ON_DELETE: Final = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL",
                     "d": "SET DEFAULT"}  # fmt: skip


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _exists(execute: Execute, name: str) -> bool:
    return execute("SELECT to_regclass(%s) IS NOT NULL", (name,), _ONE)[0] is True


def convert(execute: Execute) -> list[str]:
    """Give the schema the layout's key shapes (run in one transaction); the changes made."""
    done: list[str] = []
    present = [t for t in OWNED if _exists(execute, t)]
    # Foreign keys into owned tables reference their primary key: they go first and
    # come back owner-leading once the keys are.
    foreign = [
        fk for fk in execute(_FOREIGN_KEYS, (list(present),), _ALL)
        if list(fk[4]) == ["id"] and fk[1] in present
    ]  # fmt: skip
    for name, table, *_ in foreign:
        execute(f"ALTER TABLE {_quote(table)} DROP CONSTRAINT {_quote(name)}", (), _NONE)
    for table in present:
        row = execute(_PRIMARY_KEY, (table,), _ONE)
        if row is not None and list(row[1]) == ["id"]:
            execute(
                f"ALTER TABLE {_quote(table)} DROP CONSTRAINT {_quote(row[0])}, "
                f"ADD CONSTRAINT {_quote(table + '_pkey')} PRIMARY KEY (user_id, id)",
                (),
                _NONE,
            )
            done.append(f"{table}: PRIMARY KEY (user_id, id)")
    for name, table, columns, target, _, on_delete, deferrable, deferred in foreign:
        action = _ON_DELETE.get(on_delete, "NO ACTION")
        if action == "SET NULL":  # the owner stays: only the reference is cleared
            action = f"SET NULL ({', '.join(_quote(c) for c in columns)})"
        execute(
            f"ALTER TABLE {_quote(table)} ADD CONSTRAINT {_quote(name)} FOREIGN KEY "
            f"(user_id, {', '.join(_quote(c) for c in columns)}) REFERENCES "
            f"{_quote(target)} (user_id, id) ON DELETE {action}"
            + (" DEFERRABLE" if deferrable else "")
            + (" INITIALLY DEFERRED" if deferred else ""),
            (),
            _NONE,
        )
        done.append(f"{table}: FOREIGN KEY {name} (user_id, {', '.join(columns)})")
    if "turns" in present:
        columns = _columns(execute, _INDEX_COLUMNS, (_TURNS_KEY,))
        if columns != ["user_id", "session_id", "turn_index"]:
            execute(f"DROP INDEX IF EXISTS {_quote(_TURNS_KEY)}", (), _NONE)
            execute(
                f"CREATE UNIQUE INDEX {_quote(_TURNS_KEY)} ON turns (user_id, session_id, "
                "turn_index)",
                (),
                _NONE,
            )
            done.append("turns: UNIQUE (user_id, session_id, turn_index)")
    if _exists(execute, "users"):
        if not _exists(execute, EMAIL_KEYS):
            execute(
                f'CREATE TABLE {EMAIL_KEYS} (email_key TEXT COLLATE "C" NOT NULL, '
                f'user_id TEXT COLLATE "C" NOT NULL, CONSTRAINT {_EMAIL_KEYS_PKEY} '
                "PRIMARY KEY (email_key))",
                (),
                _NONE,
            )
            done.append(f"{EMAIL_KEYS}: created")
        if _exists(execute, _USERS_EMAIL_INDEX):
            # Live users' keys move to the lookup table (unique already: the index held).
            execute(
                f"INSERT INTO {EMAIL_KEYS} (email_key, user_id) SELECT email_key, id FROM "
                "users WHERE deleted_at IS NULL ON CONFLICT (email_key) DO NOTHING",
                (),
                _NONE,
            )
            execute(f"DROP INDEX {_quote(_USERS_EMAIL_INDEX)}", (), _NONE)
            execute("CREATE INDEX IF NOT EXISTS ix_users_email_key ON users (email_key)", (),
                    _NONE)  # fmt: skip
            done.append(f"users: email uniqueness moved to {EMAIL_KEYS}")
    return done


def has_citus(execute: Execute) -> bool:
    """Whether this database has the ``citus`` extension."""
    return execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'", (), _ONE) is not None


def distribute(execute: Execute) -> list[str]:
    """Distribute the tables not distributed yet (Citus only; each call on its own)."""
    done: list[str] = []
    known = {
        row[0]: row[1]
        for row in execute(
            "SELECT logicalrelid::regclass::text, partmethod FROM pg_dist_partition", (), _ALL
        )
    }
    plan: list[tuple[str, str]] = [("users", "SELECT create_distributed_table('users', 'id')")]
    plan += [
        (t, f"SELECT create_distributed_table('{t}', 'user_id', colocate_with => 'users')")
        for t in OWNED
    ]
    plan += [
        (t, f"SELECT create_distributed_table('{t}', 'id', colocate_with => 'users')")
        for t in USER_KEYED
    ]
    plan.append(
        (EMAIL_KEYS,
         f"SELECT create_distributed_table('{EMAIL_KEYS}', 'email_key', colocate_with => 'none')")
    )  # fmt: skip
    plan += [(t, f"SELECT create_reference_table('{t}')") for t in REFERENCE]
    for table, call in plan:
        if table in known or not _exists(execute, table):
            continue
        execute(call, (), _NONE)
        done.append(f"{table}: {call.split('(')[0].split()[-1]}")
    return done


def apply_layout(execute: Execute, transaction: Callable[[], Any]) -> list[str]:
    """Convert the schema to the layout's shapes (one transaction), then distribute it
    where Citus is installed; what was done (empty when it was done already)."""
    with transaction():
        done = convert(execute)
    if has_citus(execute):
        done += distribute(execute)
    for change in done:
        log.info("layout citus: %s", change)
    return done


# --------------------------------------------------------------------------- email keys


_SHARD_CONSTRAINT: Final = re.compile(r'unique constraint "([^"]+?)(?:_\d+)?"')


def shard_constraint(message: str) -> str | None:
    """The constraint a unique violation's message names, without the shard suffix
    Citus's workers add (``users_pkey_102008`` -> ``users_pkey``); None if none."""
    match = _SHARD_CONSTRAINT.search(message)
    return None if match is None else match.group(1)


def by_id(where: Expr) -> bool:
    """Whether ``where`` fixes ``id`` (``id = ?`` alone or in a conjunction)."""
    items = where.items if isinstance(where, And) else (where,)
    return any(isinstance(i, Cond) and i.column == "id" and i.op == "eq" for i in items)


def email_lookup(where: Expr) -> str | None:
    """The email key a live-users query fixes (``find_by_email``'s shape: a conjunction
    with ``email_key = k`` and ``deleted_at IS NULL``), else None."""
    items = where.items if isinstance(where, And) else (where,)
    key = None
    live = False
    for item in items:
        if isinstance(item, Cond):
            if item.column == "email_key" and item.op == "eq" and isinstance(item.value, str):
                key = item.value
            elif item.column == "deleted_at" and item.op == "isnull" and item.value is True:
                live = True
    return key if live else None


class EmailKeys:
    """The lookup table's upkeep, run by the backend inside each write of ``users``."""

    def __init__(self, execute: Execute) -> None:
        self._execute = execute

    def owner(self, email_key: str) -> str | None:
        """The id of the live user with this key (one shard), or None."""
        row = self._execute(
            f"SELECT user_id FROM {EMAIL_KEYS} WHERE email_key = %s", (email_key,), _ONE
        )
        return None if row is None else str(row[0])

    def claim(self, rows: Iterable[Row]) -> None:
        """Insert the keys of live ``rows``; a taken one is the unique violation the
        backend reports as ``AlreadyExists`` naming ``email_key``."""
        pairs = [(r["email_key"], r["id"]) for r in rows if r.get("deleted_at") is None]
        for key, user in pairs:
            self._execute(
                f"INSERT INTO {EMAIL_KEYS} (email_key, user_id) VALUES (%s, %s)", (key, user),
                _NONE,
            )  # fmt: skip

    def release(self, rows: Iterable[Row]) -> None:
        """Remove the keys of live ``rows`` (as they were), each only if still theirs."""
        for r in rows:
            if r.get("deleted_at") is None:
                self._execute(
                    f"DELETE FROM {EMAIL_KEYS} WHERE email_key = %s AND user_id = %s",
                    (r["email_key"], r["id"]),
                    _NONE,
                )

    def sync(self, before: Sequence[Row], after: Sequence[Row]) -> None:
        """Move keys from the rows as they were to the rows as they are (same ids)."""
        old = {r["id"]: r for r in before}
        gone, came = [], []
        for new in after:
            was = old.get(new["id"])
            was_key = None if was is None or was["deleted_at"] is not None else was["email_key"]
            now_key = None if new["deleted_at"] is not None else new["email_key"]
            if was_key == now_key:
                continue
            if was is not None and was_key is not None:
                gone.append(was)
            if now_key is not None:
                came.append(new)
        self.release(gone)
        self.claim(came)


def taken_error(table: str) -> AlreadyExists:
    """What a duplicate id of another owner is, on this layout (as the primary key's)."""
    return AlreadyExists(f"{table}: value already used by another row ({table}_pkey)",
                         columns=("id",))  # fmt: skip
