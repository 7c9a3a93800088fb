"""0010: the text index (issue 24): the core's tokens of the searched fields, in tables.

Two tables (see ``clonestore_peewee.sql._text_index``, which keeps and reads them):

* ``text_index_rows (tbl, row_id, owner, tokens, terms)``, key ``(tbl, row_id)``,
  indexed by ``(tbl, owner, tokens)``: one row per live row of ``documents`` and
  ``memories``, with its token count over the searched fields and its distinct terms;
* ``text_index_terms (tbl, term, owner, row_id, tf, tokens)``, key
  ``(tbl, term, owner, row_id)`` (``WITHOUT ROWID`` on SQLite; on PostgreSQL the key's
  index includes ``tf`` and ``tokens``): one row per distinct term of a row, its
  count and the row's token count.

The tokens are ``clonestore.text.tokenize``'s (the contract of every backend: NFC,
case-folded, runs of letters and digits; copied here, frozen), a term over 128
characters stored as ``#`` and its SHA-256. Text and key columns
compare by code point (``COLLATE "C"`` on PostgreSQL, ``utf8mb4_nopad_bin`` on
MariaDB).

**Resumable, with progress.** The script runs outside one big transaction
(``atomic = False``): it indexes each table's live rows in id order, ``BATCH`` at a
time, each batch in its own transaction; a batch's rows are in
``text_index_rows``, so a run stopped anywhere resumes after the greatest id indexed
(the rows after it are not indexed yet). Progress is logged (logger
``clonestore.migrations``) after every batch.

``down`` drops both tables.

Frozen at this version: the tables, columns, searched fields and names are written
out here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections import Counter
from typing import Any, Final

from peewee import MySQLDatabase, PostgresqlDatabase

#: Batches commit one by one (see the module docstring).
atomic = False

#: Rows indexed per transaction.
BATCH: Final = 1000
#: Indexed table -> its searched fields (text columns, and ``tags``, a list).
_TABLES: Final = (
    ("documents", ("filename", "text_content", "tags")),
    ("memories", ("content",)),
)
_LISTS: Final = ("tags",)
_TERM_CHARS: Final = 128
#: Rows per INSERT statement.
_ROWS_PER_INSERT: Final = 500
_TOKEN: Final = re.compile(r"[^\W_]+")
_ASCII_SEPARATORS: Final = str.maketrans(
    {chr(c): " " for c in range(128) if not chr(c).isalnum()}
)

log = logging.getLogger("clonestore.migrations")


def _engine(db: Any) -> str:
    if isinstance(db, PostgresqlDatabase):
        return "postgresql"
    return "mariadb" if isinstance(db, MySQLDatabase) else "sqlite"


def _quote(db: Any, name: str) -> str:
    return f"`{name}`" if _engine(db) == "mariadb" else f'"{name}"'


def _types(db: Any) -> tuple[str, str, str]:
    """(key text, long text, integer) column types of the engine."""
    engine = _engine(db)
    if engine == "postgresql":
        return 'TEXT COLLATE "C"', 'TEXT COLLATE "C"', "BIGINT"
    if engine == "mariadb":
        nopad = "CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
        return f"VARCHAR(128) {nopad}", f"LONGTEXT {nopad}", "BIGINT"
    return "TEXT", "TEXT", "INTEGER"


def _create(db: Any) -> None:
    """The two tables and the owner index (kept if there already)."""
    key, long, integer = _types(db)
    without_rowid = " WITHOUT ROWID" if _engine(db) == "sqlite" else ""
    # PostgreSQL: the key's index carries tf and tokens, so a posting is read from the
    # index alone (SQLite's and InnoDB's tables are their primary key's B-tree already).
    include = " INCLUDE (tf, tokens)" if _engine(db) == "postgresql" else ""
    db.execute_sql(
        f"CREATE TABLE IF NOT EXISTS text_index_rows (tbl {key} NOT NULL, "
        f"row_id {key} NOT NULL, owner {key} NOT NULL, tokens {integer} NOT NULL, "
        f"terms {long} NOT NULL, PRIMARY KEY (tbl, row_id))"
    )
    db.execute_sql(
        "CREATE INDEX IF NOT EXISTS ix_text_index_rows_owner "
        "ON text_index_rows (tbl, owner, tokens)"
    )
    db.execute_sql(
        f"CREATE TABLE IF NOT EXISTS text_index_terms (tbl {key} NOT NULL, "
        f"term {key} NOT NULL, owner {key} NOT NULL, row_id {key} NOT NULL, "
        f"tf {integer} NOT NULL, tokens {integer} NOT NULL, "
        f"PRIMARY KEY (tbl, term, owner, row_id){include}){without_rowid}"
    )


def tokenize(text: str) -> list[str]:
    """``clonestore.text.tokenize`` as of this migration (the tokenizer contract)."""
    if text.isascii():
        return text.lower().translate(_ASCII_SEPARATORS).split()
    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
    return _TOKEN.findall(folded)


def _term_key(term: str) -> str:
    if len(term) <= _TERM_CHARS:
        return term
    return "#" + hashlib.sha256(term.encode("utf-8")).hexdigest()


def _entries(values: tuple[Any, ...], fields: tuple[str, ...]) -> tuple[int, Counter[str]]:
    counts: Counter[str] = Counter()
    length = 0
    for name, value in zip(fields, values, strict=True):
        if value is None:
            continue
        if name in _LISTS:
            items = json.loads(value) if isinstance(value, str) else value
            parts = [tokenize(item) for item in items if isinstance(item, str)]
        else:
            parts = [tokenize(value)]
        for tokens in parts:
            length += len(tokens)
            counts.update(_term_key(t) for t in tokens)
    return length, counts


def _insert(db: Any, head: str, width: int, rows: list[tuple[Any, ...]]) -> None:
    """``head VALUES (...), (...)``, :data:`_ROWS_PER_INSERT` rows a statement."""
    one = "(" + ", ".join([db.param] * width) + ")"
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        part = rows[start : start + _ROWS_PER_INSERT]
        db.execute_sql(
            f"{head} VALUES {', '.join([one] * len(part))}", [v for row in part for v in row]
        )


def _durable(db: Any) -> None:
    """Make the batch just written durable (as in 0009: on SQLite the schema session is
    a transaction holding the write lock; commit it and begin it again; nothing under a
    dry run, ``migration_plan``)."""
    if _engine(db) == "sqlite" and db.transaction_depth() == 1 and not getattr(
        db, "clonestore_planning", False
    ):
        db.top_transaction().commit(begin=True)


def _index(db: Any, table: str, fields: tuple[str, ...]) -> None:
    p = db.param
    if table not in db.get_tables():
        return
    last = db.execute_sql(
        f"SELECT MAX(row_id) FROM text_index_rows WHERE tbl = {p}", (table,)
    ).fetchone()[0]
    last = "" if last is None else last
    name = _quote(db, table)
    total = int(
        db.execute_sql(
            f"SELECT COUNT(*) FROM {name} WHERE deleted_at IS NULL AND id > {p}", (last,)
        ).fetchone()[0]
    )
    columns = ", ".join(_quote(db, name) for name in fields)
    done = 0
    while True:
        with db.atomic():
            rows = db.execute_sql(
                f"SELECT id, user_id, {columns} FROM {name} "
                f"WHERE deleted_at IS NULL AND id > {p} ORDER BY id LIMIT {BATCH}",
                (last,),
            ).fetchall()
            if not rows:
                break
            row_values: list[tuple[Any, ...]] = []
            term_values: list[tuple[Any, ...]] = []
            for id, owner, *values in rows:
                length, counts = _entries(tuple(values), fields)
                row_values.append((table, id, owner, length, " ".join(counts)))
                term_values.extend((table, t, owner, id, tf, length) for t, tf in counts.items())
            _insert(
                db, "INSERT INTO text_index_rows (tbl, row_id, owner, tokens, terms)", 5,
                row_values,
            )  # fmt: skip
            _insert(
                db, "INSERT INTO text_index_terms (tbl, term, owner, row_id, tf, tokens)", 6,
                term_values,
            )  # fmt: skip
            last = rows[-1][0]
            done += len(rows)
        _durable(db)
        log.info("0010_text_index: %s %d/%d rows", table, done, total)


def up(migrator: Any, db: Any) -> None:
    """Create the index tables and index the live rows, batch by batch, resumably."""
    _create(db)
    _durable(db)
    for table, fields in _TABLES:
        _index(db, table, fields)


def down(migrator: Any, db: Any) -> None:
    """Drop the index tables."""
    db.execute_sql("DROP TABLE IF EXISTS text_index_terms")
    db.execute_sql("DROP TABLE IF EXISTS text_index_rows")
