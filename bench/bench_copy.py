"""PostgreSQL bulk create: ``documents.create_many`` of 100k rows by COPY (capability
``bulk_copy``) against raw psycopg2 COPY and ``execute_values``, as ratios in one run.

* ``raw COPY``: psycopg2 ``copy_expert`` of the same rows, formatted by hand as COPY
  text (the formatting is part of what a program doing it by hand pays);
* ``raw execute_values``: psycopg2 ``execute_values`` (pages of 1000 rows), the rows
  built as tuples by hand;
* ``backend insert_many``: the backend's COPY path alone, given complete rows built as
  the raw ways build them (what the core hands it after validating);
* ``create_many``: the store's API: validation, ids, timestamps, then COPY;
* ``create_many, INSERT``: the same with ``copy_min_rows`` above the batch (the
  ``execute_values`` path it took before).

Each way writes into its own empty table (truncated between repeats), in one
transaction; the ways run in turn ``--repeat`` times, medians.

    python bench/bench_copy.py [--postgres URL] [--rows 100000] [--repeat 3]

``--postgres`` names a server (default: the machine's at 127.0.0.1:5432); a throwaway
database is made on it and dropped after.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg2
import psycopg2.extras
from timing import throwaway_postgres

import clonestore
from clonestore.records import TABLES

COLUMNS = (
    "id", "created_at", "updated_at", "version", "deleted_at", "user_id", "filename",
    "content_type", "size_bytes", "text_content", "chunk_count", "status", "vector_ids",
    "tags", "storage_path", "error_message", "uploaded_at", "processed_at",
    "deleted_by_cascade",
)  # fmt: skip


def documents(user: str, n: int) -> list[dict[str, Any]]:
    """What an application passes to create_many."""
    return [
        {
            "user_id": user,
            "filename": f"notes-{i}.txt",
            "content_type": "text/plain",
            "size_bytes": 1000 + i,
            "text_content": f"the text of document {i}\twith a tab",
            "tags": ["notes", f"t{i % 10}"],
        }
        for i in range(n)
    ]


def full_rows(user: str, n: int, now: datetime | None = None) -> list[tuple[Any, ...]]:
    """The same documents as complete rows, as a program writing SQL by hand builds them."""
    now = now or datetime.now(UTC)
    return [
        (
            str(uuid.uuid4()),
            now,
            now,
            1,
            None,
            user,
            f"notes-{i}.txt",
            "text/plain",
            1000 + i,
            f"the text of document {i}\twith a tab",
            0,
            "pending",
            [],
            ["notes", f"t{i % 10}"],
            None,
            None,
            now,
            None,
            None,
        )
        for i in range(n)
    ]


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, list):
        return "{" + ",".join('"' + v + '"' for v in value) + "}"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.rows
    with throwaway_postgres(args.postgres, "bench_copy") as url:
        copying = clonestore.open(url)
        inserting = clonestore.open(url, copy_min_rows=n + 1)
        user = copying.users.create(email="bulk@example.com", name="Bulk").id
        conn = psycopg2.connect(url)
        names = ", ".join(COLUMNS)

        def truncate() -> None:
            with conn, conn.cursor() as cur:
                cur.execute("TRUNCATE documents")

        def raw_copy() -> None:
            rows = full_rows(user, n)
            text = "".join("\t".join(map(_copy_text, row)) + "\n" for row in rows)
            with conn, conn.cursor() as cur:
                cur.copy_expert(f"COPY documents ({names}) FROM STDIN", io.StringIO(text))

        def raw_execute_values() -> None:
            rows = full_rows(user, n)
            with conn, conn.cursor() as cur:
                psycopg2.extras.execute_values(
                    cur, f"INSERT INTO documents ({names}) VALUES %s", rows, page_size=1000
                )

        def insert_many() -> None:
            now = datetime.now(UTC)
            rows = [dict(zip(COLUMNS, row, strict=True)) for row in full_rows(user, n, now)]
            copying.backend.insert_many(TABLES["documents"], rows)

        def create_many() -> None:
            copying.documents.create_many(documents(user, n))

        def create_many_insert() -> None:
            inserting.documents.create_many(documents(user, n))

        ways: dict[str, Callable[[], None]] = {
            "raw COPY": raw_copy,
            "raw execute_values": raw_execute_values,
            "backend insert_many": insert_many,
            "create_many (COPY)": create_many,
            "create_many, INSERT": create_many_insert,
        }
        times: dict[str, list[float]] = {label: [] for label in ways}
        for _ in range(args.repeat):
            for label, way in ways.items():
                truncate()
                started = time.perf_counter()
                way()
                times[label].append(time.perf_counter() - started)
                with conn, conn.cursor() as cur:
                    cur.execute("SELECT count(*) FROM documents")
                    assert cur.fetchone()[0] == n, label
        truncate()
        conn.close()
        copying.close()
        inserting.close()
    base = statistics.median(times["raw COPY"])
    print(f"{n} documents, median of {args.repeat}")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"  {label:<22} {median:7.2f} s  {median / base:5.2f}x raw COPY  "
              f"{n / median:9.0f} rows/s")  # fmt: skip


if __name__ == "__main__":
    main()
