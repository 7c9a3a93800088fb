"""The text index of the SQL backends: the core's tokens in two tables (migration 0010).

Text search's meaning is :func:`clonestore.spi_reference.search_reference`; this index lets the
engine find the matching rows and count the BM25 statistics without reading and
tokenizing every row searched. One layout, one meaning, on SQLite, PostgreSQL and
MariaDB (plain tables and B-tree indexes: no engine tokenizer is involved, so the
match set is the core's tokens compared for equality):

* ``text_index_rows`` (``tbl``, ``row_id``, ``owner``, ``tokens``, ``terms``): one
  row per **live** row of an indexed table: its owner, its token count over the
  searched fields (BM25's ``|D|``) and its distinct terms (to remove them again).
  Indexed by ``(tbl, owner, tokens)``: a user's ``N`` and total length in one range.
* ``text_index_terms`` (``tbl``, ``term``, ``owner``, ``row_id``, ``tf``, ``tokens``):
  one row per distinct term of a row, with its count (``tf``) and the row's length.
  The key ``(tbl, term, owner, row_id)`` gives a term's postings within one user
  (or across users) as one range: ``n(t)`` and the candidates' ``tf`` and ``|D|``.

A term longer than :data:`TERM_CHARS` characters is stored as ``#`` and its SHA-256
(``#`` is never in a token, so no token is mistaken for one).

Which tables are indexed is :data:`INDEXED` (the core's searched tables, with the
fields their repositories search); a search of other fields, or of other tables
(plugins', third parties'), is answered by the reference path. The index is kept
by the backend's own writes, in the caller's transaction: insert, insert_many,
update (when a searched field, the owner or ``deleted_at`` changes: soft delete
removes a row's entries, restore adds them back), upsert and delete. The index
answers a search whose ``where`` is the live rows (``deleted_at IS NULL``), of one
owner or of all; any other condition goes to the reference path.

BM25 is computed by :func:`clonestore.spi_reference.bm25_scores` (the floats of
:func:`~clonestore.spi_reference.bm25`) from the integers read here (the
rows' ``tf`` and ``tokens``, ``N``, the total length, ``n(t)``), so the scores are the
reference's to the bit; phrases are checked on the candidates' fields with
:func:`clonestore.spi_reference.matches_query`. On PostgreSQL a query without phrases
is scored by the engine (:meth:`TextIndex._search_in_engine`): the idfs computed here
are parameters, the engine only adds, multiplies and divides float8 (IEEE doubles) in
``bm25_scores``'s order, and only the best ``limit`` ids come back.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from clonestore.query import And, Cond, Expr
from clonestore.spi import Row, TableSpec
from clonestore.spi_reference import bm25_scores, field_tokens, matches_query
from clonestore.text import K1, B, TextQuery, bm25_idfs

from ._modes import ALL, MANY, NONE

__all__ = ["INDEXED", "OWNER", "ROWS", "TERMS", "TERM_CHARS", "TextIndex", "term_key"]

#: Indexed table -> the fields its repository searches (``search_fields``).
INDEXED: Final[Mapping[str, tuple[str, ...]]] = {
    "documents": ("filename", "text_content", "tags"),
    "memories": ("content",),
}
#: The column naming a row's owner, in every indexed table.
OWNER: Final = "user_id"
ROWS: Final = "text_index_rows"
TERMS: Final = "text_index_terms"
#: The longest term stored as itself (the key column's width).
TERM_CHARS: Final = 128
#: Values per ``IN (...)`` list.
_CHUNK: Final = 500


def term_key(term: str) -> str:
    """What the index stores for ``term``: itself, or ``#`` and its SHA-256 if longer
    than :data:`TERM_CHARS`."""
    if len(term) <= TERM_CHARS:
        return term
    return "#" + hashlib.sha256(term.encode("utf-8")).hexdigest()


def entries(row: Mapping[str, Any], fields: Sequence[str]) -> tuple[int, Counter[str]]:
    """A row's token count over ``fields`` and each term key's count."""
    counts: Counter[str] = Counter()
    length = 0
    for tokens in field_tokens(row, fields):
        length += len(tokens)
        counts.update(tokens)
    if any(len(term) > TERM_CHARS for term in counts):
        keyed: Counter[str] = Counter()
        for term, tf in counts.items():
            keyed[term_key(term)] += tf
        counts = keyed
    return length, counts


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _scope(where: Expr, live: bool) -> tuple[bool, str | None] | None:
    """``(True, owner)`` when ``where`` is exactly the live rows of ``owner`` (or of all
    users: ``owner`` None); None for any other condition (the index cannot answer it)."""
    items: list[Expr] = []
    pending = [where]
    while pending:
        expr = pending.pop()
        if type(expr) is And:
            pending.extend(expr.items)
        else:
            items.append(expr)
    owner: str | None = None
    seen_live = not live
    for item in items:
        if type(item) is not Cond:
            return None
        if item.column == "deleted_at" and item.op == "isnull" and item.value is True:
            seen_live = True
        elif item.column == OWNER and item.op == "eq" and type(item.value) is str:
            if owner is not None and owner != item.value:
                return None
            owner = item.value
        else:
            return None
    return (True, owner) if seen_live else None


class _Backend(Protocol):
    """What the index needs of :class:`~.backend.SQLBackend`."""

    database: Any
    dialect: Any

    def execute(self, sql: str, params: Any, mode: int) -> Any: ...

    def project(self, table: TableSpec, where: Expr, names: Sequence[str]) -> list[Row]: ...


class TextIndex:
    """Keeps and reads the text index of one SQL backend (see the module docstring)."""

    def __init__(self, backend: _Backend) -> None:
        self.backend = backend
        self.p = backend.database.param
        self.bigint = "SIGNED" if backend.dialect.name == "mariadb" else "BIGINT"
        self.lock = " FOR UPDATE" if backend.database.for_update else ""
        #: Whether the engine scores the candidates (PostgreSQL: float8 is IEEE double).
        self.in_engine = backend.dialect.name == "postgresql"
        #: Whether the index tables exist (migration 0010 applied); see ``refresh``.
        self.ready = False

    def refresh(self) -> None:
        """Whether the index is there to keep and read: after migrations ran."""
        # Not on PostgreSQL's Citus layout: the index tables are not distributed.
        enabled = not getattr(self.backend, "citus", False)
        tables = set(self.backend.database.get_tables()) if enabled else set()
        self.ready = ROWS in tables and TERMS in tables

    def covers(self, table: TableSpec) -> bool:
        """Whether ``table``'s writes keep the index."""
        return self.ready and table.name in INDEXED

    # ------------------------------------------------------------------ upkeep

    def add(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Index the live ones of ``rows`` (not indexed yet), in the caller's transaction."""
        name = table.name
        fields = INDEXED[name]
        soft = table.soft_delete
        row_values: list[tuple[Any, ...]] = []
        term_values: list[tuple[Any, ...]] = []
        for row in rows:
            if soft and row.get("deleted_at") is not None:
                continue
            id, owner = row["id"], row[OWNER]
            length, counts = entries(row, fields)
            row_values.append((name, id, owner, length, " ".join(counts)))
            term_values.extend((name, term, owner, id, tf, length) for term, tf in counts.items())
        if not row_values:
            return
        p = self.p
        execute = self.backend.execute
        execute(
            f"INSERT INTO {ROWS} (tbl, row_id, owner, tokens, terms) "
            f"VALUES ({p}, {p}, {p}, {p}, {p})",
            row_values,
            MANY,
        )
        if term_values:
            execute(
                f"INSERT INTO {TERMS} (tbl, term, owner, row_id, tf, tokens) "
                f"VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
                term_values,
                MANY,
            )

    def remove(self, table: TableSpec, ids: Sequence[str]) -> None:
        """Remove the entries of the rows ``ids`` (indexed or not)."""
        p = self.p
        name = table.name
        execute = self.backend.execute
        for chunk in _chunks(list(ids)):
            marks = ", ".join([p] * len(chunk))
            # Locked (where the engine locks rows): the latest committed entries, not a
            # snapshot's (InnoDB's repeatable read), whose writer this one may have waited on.
            found = execute(
                f"SELECT row_id, owner, terms FROM {ROWS} WHERE tbl = {p} "
                f"AND row_id IN ({marks}){self.lock}",
                (name, *chunk),
                ALL,
            )
            for id, owner, terms in found:
                for part in _chunks(terms.split()):
                    execute(
                        f"DELETE FROM {TERMS} WHERE tbl = {p} AND term IN "
                        f"({', '.join([p] * len(part))}) AND owner = {p} AND row_id = {p}",
                        (name, *part, owner, id),
                        NONE,
                    )
            if found:
                execute(
                    f"DELETE FROM {ROWS} WHERE tbl = {p} AND row_id IN ({marks})",
                    (name, *chunk),
                    NONE,
                )

    def replace(self, table: TableSpec, rows: Sequence[Row]) -> None:
        """Index ``rows`` as they are now (their old entries removed first)."""
        self.remove(table, [row["id"] for row in rows])
        self.add(table, rows)

    # ------------------------------------------------------------------ search

    @staticmethod
    def in_scope(where: Expr, row: Row) -> bool:
        """Whether ``row`` matches ``where``, a condition :meth:`search` answered (the
        live rows, of one owner or of all): a row read back by id is checked with it."""
        scope = _scope(where, "deleted_at" in row)
        if scope is None:
            return True  # not the index's: the statement itself carried ``where``
        owner = scope[1]
        return row.get("deleted_at") is None and (owner is None or row[OWNER] == owner)

    def search(
        self,
        table: TableSpec,
        where: Expr,
        fields: Sequence[str],
        query: TextQuery,
        limit: int,
    ) -> list[tuple[str, float]] | None:
        """The best ``limit`` ids with their scores, or None when the index cannot answer
        (table or fields not indexed, a condition beyond owner and liveness)."""
        name = table.name
        if not self.ready or set(INDEXED.get(name, ())) != set(fields) or not fields:
            return None
        scope = _scope(where, table.soft_delete)
        if scope is None:
            return None
        owner = scope[1]
        if self.in_engine and not query.phrases:
            return self._search_in_engine(name, owner, query, limit)
        p = self.p
        keys = {term_key(term): term for term in query.all_terms}
        marks = ", ".join([p] * len(keys))
        by_owner = f" AND owner = {p}" if owner is not None else ""
        params: list[Any] = [name, *keys]
        if owner is not None:
            params.append(owner)
        params.append(name)
        if owner is not None:
            params.append(owner)
        rows = self.backend.execute(
            f"SELECT term, row_id, tf, tokens FROM {TERMS} WHERE tbl = {p} "
            f"AND term IN ({marks}){by_owner} UNION ALL "
            f"SELECT NULL, NULL, COUNT(*), CAST(COALESCE(SUM(tokens), 0) AS {self.bigint}) "
            f"FROM {ROWS} WHERE tbl = {p}{by_owner}",
            params,
            ALL,
        )
        total = total_length = 0
        frequency: dict[str, int] = dict.fromkeys(query.all_terms, 0)
        found: dict[str, tuple[dict[str, int], int]] = {}
        for key, id, tf, length in rows:
            if key is None:
                total, total_length = int(tf), int(length)
                continue
            term = keys[key]
            frequency[term] += 1
            entry = found.get(id)
            if entry is None:
                found[id] = ({term: int(tf)}, int(length))
            else:
                entry[0][term] = int(tf)
        wanted = len(keys)
        candidates = [(id, tfs, length) for id, (tfs, length) in found.items()
                      if len(tfs) == wanted]  # fmt: skip
        if not candidates or not total:
            return []
        if query.phrases:
            holding = self._with_phrases(table, where, fields, query, [c[0] for c in candidates])
            candidates = [c for c in candidates if c[0] in holding]
        average = total_length / total
        scores = bm25_scores(
            [(tfs, length) for _, tfs, length in candidates], frequency, total, average,
            query.all_terms,
        )  # fmt: skip
        scored = sorted(zip([c[0] for c in candidates], scores, strict=True),
                        key=lambda pair: (-pair[1], pair[0]))  # fmt: skip
        return scored[:limit]

    def _search_in_engine(
        self, name: str, owner: str | None, query: TextQuery, limit: int
    ) -> list[tuple[str, float]]:
        """:meth:`search` of a query without phrases, its BM25 computed by the engine: the
        statistics read first (each term's ``n(t)``, ``N``, the total length), the idfs
        computed here (:func:`~clonestore.text.bm25_idfs`) and passed in, so the engine
        only adds, multiplies and divides doubles, in :func:`~clonestore.text.bm25_scores`'s
        order: the same floats; only the best ``limit`` rows come back."""
        if limit <= 0:
            return []
        p = self.p
        keys = {term_key(term): term for term in query.all_terms}
        by_owner = f" AND owner = {p}" if owner is not None else ""
        owned = [owner] if owner is not None else []
        rows = self.backend.execute(
            f"SELECT term, COUNT(*), NULL FROM {TERMS} WHERE tbl = {p} "
            f"AND term IN ({', '.join([p] * len(keys))}){by_owner} GROUP BY term UNION ALL "
            f"SELECT NULL, COUNT(*), CAST(COALESCE(SUM(tokens), 0) AS {self.bigint}) "
            f"FROM {ROWS} WHERE tbl = {p}{by_owner}",
            [name, *keys, *owned, name, *owned],
            ALL,
        )
        total = total_length = 0
        frequency: dict[str, int] = dict.fromkeys(query.all_terms, 0)
        for key, count, length in rows:
            if key is None:
                total, total_length = int(count), int(length)
            else:
                frequency[keys[key]] = int(count)
        if not total or not total_length or not all(frequency.values()):
            return []
        average = total_length / total
        idfs = [(term_key(term), idf) for term, idf in bm25_idfs(frequency, total, keys.values())]
        # bm25_scores: norm = K1 * (base + B * length / average); score = 0.0, then
        # score += idf * tf * saturation / (tf + norm) for each term in sorted order.
        norm = f"{p}::float8 * ({p}::float8 + {p}::float8 * t0.tokens::float8 / {p}::float8)"
        score = f"{p}::float8"
        joins: list[str] = []
        score_params: list[Any] = [0.0]
        join_params: list[Any] = []
        for i, (key, idf) in enumerate(idfs):
            score = (
                f"({score} + {p}::float8 * t{i}.tf::float8 * {p}::float8 "
                f"/ (t{i}.tf::float8 + {norm}))"
            )
            score_params += [idf, K1 + 1.0, K1, 1.0 - B, B, average]
            if i:
                joins.append(
                    f" JOIN {TERMS} t{i} ON t{i}.tbl = t0.tbl AND t{i}.term = {p} "
                    f"AND t{i}.owner = t0.owner AND t{i}.row_id = t0.row_id"
                )
                join_params.append(key)
        where_owner = f" AND t0.owner = {p}" if owner is not None else ""
        found = self.backend.execute(
            f"SELECT t0.row_id, {score} AS score FROM {TERMS} t0{''.join(joins)} "
            f"WHERE t0.tbl = {p} AND t0.term = {p}{where_owner} "
            f"ORDER BY score DESC, t0.row_id LIMIT {p}",
            [*score_params, *join_params, name, idfs[0][0], *owned, limit],
            ALL,
        )
        return [(id, float(value)) for id, value in found]

    def _with_phrases(
        self, table: TableSpec, where: Expr, fields: Sequence[str], query: TextQuery,
        ids: Sequence[str],
    ) -> set[str]:  # fmt: skip
        """The ids among ``ids`` whose fields hold every phrase of ``query``."""
        backend = self.backend
        holding: set[str] = set()
        for chunk in _chunks(list(ids)):
            for row in backend.project(table, And((where, Cond("id", "in", tuple(chunk)))),
                                       ("id", *fields)):  # fmt: skip
                if matches_query(field_tokens(row, fields), query):
                    holding.add(row["id"])
        return holding
