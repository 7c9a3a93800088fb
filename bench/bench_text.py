"""Text search: ``documents.search`` p50 against the raw engine query, as ratios in one run
(issue 24 item 4, text part).

The corpus is generated here, offline and deterministically: a vocabulary of 5,000
pronounceable words drawn with a Zipf distribution (s = 1.1), documents of 30 to 120
words, spread over 10 owners. Queries are one or two words of middling frequency
(ranks 50 to 500); each search is one owner's (``where={"user_id": ...}``), limit 10.

* ``memory://`` and SQLite: ``documents.search`` (clonestore's tokenizer and BM25 over
  the owner's rows: memory:// from the tokens it keeps per row, SQLite from its text
  index, migration 0010: the owner's postings and statistics in one statement);
* raw: SQLite FTS5 (``unicode61``, its own ``bm25()``) over the same texts in a plain
  table of the same file, joined to the owner, ``ORDER BY bm25 LIMIT 10``: the engine
  query an application would write by hand.
* with ``--postgres`` / ``--mariadb``: ``documents.search`` on a throwaway database of
  that server (its text index), against that engine's own raw query over the same
  texts: PostgreSQL ``tsvector`` (``'simple'``) with GIN and ``ts_rank``, MariaDB
  ``FULLTEXT`` in boolean mode with every word required; each ratio is to its engine's
  (PostgreSQL's store gets ``VACUUM ANALYZE`` after the load, as autovacuum would).

    python bench/bench_text.py [--documents 100000] [--queries 20] [--postgres] [--mariadb]
        [--skip-memory] [--skip-sqlite]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import (
    add_postgres_url,
    mariadb_connect,
    measure,
    throwaway_mariadb,
    throwaway_postgres,
)

import clonestore

OWNERS = 10
SYLLABLES = ["ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "in", "ash", "mor", "ti"]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < size:
        words["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))] = None
    return list(words)


def corpus(documents: int) -> tuple[list[str], list[str]]:
    """(texts, queries), the same for every run."""
    rng = random.Random(24)
    words = vocabulary(5000, rng)
    weights = [1 / (rank**1.1) for rank in range(1, len(words) + 1)]
    texts = [
        " ".join(rng.choices(words, weights, k=rng.randint(30, 120))).capitalize() + "."
        for _ in range(documents)
    ]
    middling = words[50:500]
    queries = [
        " ".join(rng.sample(middling, rng.choice([1, 2]))) for _ in range(200)
    ]
    return texts, queries


def load(url: str, texts: list[str]) -> tuple[clonestore.Store, list[str]]:
    store = clonestore.open(url)
    owners = [store.users.create(email=f"u{i}@example.com", name="U").id for i in range(OWNERS)]
    batch = 5000
    for start in range(0, len(texts), batch):
        store.documents.create_many(
            {"user_id": owners[i % OWNERS], "filename": f"d{i}.txt", "text_content": t}
            for i, t in enumerate(texts[start : start + batch], start)
        )
    return store, owners


def raw_fts5(path: Path, texts: list[str]) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE raw_docs (id INTEGER PRIMARY KEY, owner INTEGER, body TEXT)")
    db.execute("CREATE INDEX raw_docs_owner ON raw_docs (owner)")
    db.execute(
        "CREATE VIRTUAL TABLE raw_fts USING fts5(body, content='raw_docs', content_rowid='id')"
    )
    db.executemany(
        "INSERT INTO raw_docs (id, owner, body) VALUES (?, ?, ?)",
        ((i, i % OWNERS, t) for i, t in enumerate(texts)),
    )
    db.execute("INSERT INTO raw_fts (raw_fts) VALUES ('rebuild')")
    db.commit()
    return db


def raw_postgres(url: str, texts: list[str]) -> Any:
    import psycopg2
    import psycopg2.extras

    db = psycopg2.connect(url)
    with db.cursor() as cur:
        cur.execute(
            "CREATE TABLE raw_docs (id INTEGER PRIMARY KEY, owner INTEGER, body TEXT, "
            "tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED)"
        )
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO raw_docs (id, owner, body) VALUES %s",
            [(i, i % OWNERS, t) for i, t in enumerate(texts)],
            page_size=2000,
        )
        cur.execute("CREATE INDEX raw_docs_owner ON raw_docs (owner)")
        cur.execute("CREATE INDEX raw_docs_tsv ON raw_docs USING gin (tsv)")
        cur.execute("ANALYZE raw_docs")
    db.commit()
    return db


RAW_POSTGRES = (
    "SELECT id, ts_rank(tsv, q) AS s FROM raw_docs, plainto_tsquery('simple', %s) q "
    "WHERE tsv @@ q AND owner = %s ORDER BY s DESC LIMIT 10"
)


def raw_mariadb(url: str, texts: list[str]) -> Any:
    db = mariadb_connect(url, url.rsplit("/", 1)[1])
    with db.cursor() as cur:
        cur.execute(
            "CREATE TABLE raw_docs (id INTEGER PRIMARY KEY, owner INTEGER, body TEXT, "
            "INDEX (owner), FULLTEXT (body)) ENGINE=InnoDB"
        )
        rows = [(i, i % OWNERS, t) for i, t in enumerate(texts)]
        for start in range(0, len(rows), 2000):
            cur.executemany(
                "INSERT INTO raw_docs (id, owner, body) VALUES (%s, %s, %s)",
                rows[start : start + 2000],
            )
    db.commit()
    return db


RAW_MARIADB = (
    "SELECT id, MATCH (body) AGAINST (%s IN BOOLEAN MODE) AS s FROM raw_docs "
    "WHERE MATCH (body) AGAINST (%s IN BOOLEAN MODE) AND owner = %s ORDER BY s DESC LIMIT 10"
)


RAW = (
    "SELECT d.id, bm25(raw_fts) AS s FROM raw_fts JOIN raw_docs d ON d.id = raw_fts.rowid "
    "WHERE raw_fts MATCH ? AND d.owner = ? ORDER BY s LIMIT 10"
)


def search_with(
    store: clonestore.Store, owners: list[str], queries: list[str]
) -> Callable[[int], object]:
    def search(i: int) -> object:
        return store.documents.search(
            queries[i % len(queries)], limit=10, where={"user_id": owners[i % OWNERS]}
        )

    return search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL beside SQLite")
    parser.add_argument("--mariadb", action="store_true", help="MariaDB beside SQLite")
    parser.add_argument("--skip-memory", action="store_true", help="no memory:// row")
    parser.add_argument("--skip-sqlite", action="store_true", help="no SQLite store row")
    parser.add_argument(
        "--mariadb-url",
        default=os.environ.get("CLONESTORE_TEST_MARIADB_URL", "mariadb://root@127.0.0.1:3306/"),
    )
    add_postgres_url(parser)
    args = parser.parse_args()
    texts, queries = corpus(args.documents)
    print(f"{args.documents} documents, {OWNERS} owners, {args.queries} queries per way")
    rows: list[tuple[str, float, float]] = []  # (way, p50 us, its raw's p50 us)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        started = time.perf_counter()
        raw = raw_fts5(Path(tmp) / "raw.db", texts)
        print(f"raw FTS5 loaded in {time.perf_counter() - started:.1f} s")

        def raw_search(i: int) -> object:
            return raw.execute(RAW, (queries[i % len(queries)], i % OWNERS)).fetchall()

        base = measure(raw_search, args.queries, warmup=OWNERS).p50_us
        rows.append(("raw SQLite FTS5", base, base))
        urls = [] if args.skip_memory else [("memory://", "memory://")]
        if not args.skip_sqlite:
            urls.append(("sqlite", f"sqlite:///{tmp}/c.db"))
        for label, url in urls:
            started = time.perf_counter()
            store, owners = load(url, texts)
            print(f"{label} loaded in {time.perf_counter() - started:.1f} s")
            # One warm-up search per owner: memory:// then answers from its kept tokens.
            timing = measure(search_with(store, owners, queries), args.queries, warmup=OWNERS)
            rows.append((f"{label} documents.search", timing.p50_us, base))
            store.close()
        servers = []
        if args.postgres:
            servers.append(("PostgreSQL", throwaway_postgres(args.postgres_url), raw_postgres,
                            lambda q, o: (q, o), RAW_POSTGRES))  # fmt: skip
        if args.mariadb:
            servers.append(("MariaDB", throwaway_mariadb(args.mariadb_url), raw_mariadb,
                            lambda q, o: (_boolean(q), _boolean(q), o), RAW_MARIADB))  # fmt: skip
        for label, database, make_raw, params, sql in servers:
            url = stack.enter_context(database)
            started = time.perf_counter()
            connection = make_raw(url, texts)
            print(f"raw {label} loaded in {time.perf_counter() - started:.1f} s")

            def engine_search(
                i: int, connection: Any = connection, params: Any = params, sql: str = sql
            ) -> object:
                with connection.cursor() as cur:
                    cur.execute(sql, params(queries[i % len(queries)], i % OWNERS))
                    return cur.fetchall()

            engine = measure(engine_search, args.queries, warmup=OWNERS).p50_us
            rows.append((f"raw {label}", engine, engine))
            connection.close()
            started = time.perf_counter()
            store, owners = load(url, texts)
            print(f"{label} loaded in {time.perf_counter() - started:.1f} s")
            if label == "PostgreSQL":  # what autovacuum does after a load (raw: ANALYZE)
                backend: Any = store.backend
                with backend.database.connection_context():
                    backend.database.execute_sql("VACUUM ANALYZE")
            timing = measure(search_with(store, owners, queries), args.queries, warmup=OWNERS)
            rows.append((f"{label} documents.search", timing.p50_us, engine))
            store.close()
        print("| way | p50 | ratio to its engine's raw query |\n| --- | --- | --- |")
        for label, p50, raw_p50 in rows:
            print(f"| {label} | {p50 / 1000:.2f} ms | {p50 / raw_p50:.1f}x |")


def _boolean(query: str) -> str:
    """MariaDB's boolean mode with every word required."""
    return " ".join("+" + word for word in query.split())


if __name__ == "__main__":
    main()
