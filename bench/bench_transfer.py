"""Dump and load at scale: ``store.dump`` of a SQLite database holding ``--turns`` turns
(default 1M), and ``store.load`` of that file into a fresh SQLite file and a fresh
PostgreSQL database, each beside the raw driver doing the same job in the same run.

* ``dump`` against ``raw dump``: sqlite3 reading every table in id order, each row as a
  JSON array (datetimes ISO, decimals as strings), gzip level 3: the file's work without
  clonestore's (no specs, no checksums, no validation);
* ``load`` against ``raw load``: the same lines parsed and inserted with the driver's
  ``executemany`` (SQLite) / ``execute_values`` (PostgreSQL) in batches of 2,000, one
  transaction per batch, into the tables clonestore made (no validation, no progress marks).

The source has 1,000 users and 10,000 sessions made through the repositories, and the
turns inserted in batches through the SPI (their sessions' totals are not kept: the
benchmark moves rows). One run each (minutes at 1M turns).

    python bench/bench_transfer.py [--turns 1000000] [--postgres URL] [--no-postgres]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import throwaway_postgres

import clonestore

PLUGINS = ["audit", "cache", "ratelimit"]
BATCH = 2000


def build_source(path: Path, turns: int) -> None:
    """A SQLite database with users, sessions and ``turns`` turns."""
    with clonestore.open(f"sqlite:///{path}", plugins=PLUGINS) as store:
        users = store.users.create_many(
            [{"email": f"user{i}@example.com", "name": f"User {i}"} for i in range(1000)]
        )
        sessions = store.sessions.create_many(
            [{"user_id": users[i % 1000].id} for i in range(10_000)]
        )
        spec = store.tables["turns"]
        start = datetime(2026, 1, 1, tzinfo=UTC)
        made = 0
        while made < turns:
            rows = []
            for i in range(made, min(turns, made + 10_000)):
                session = sessions[i % 10_000]
                at = start + timedelta(microseconds=i * 1000)
                rows.append({
                    "id": str(uuid.uuid4()), "created_at": at, "updated_at": at, "version": 1,
                    "session_id": session.id, "user_id": session.user_id,
                    "turn_index": i // 10_000 + 1,
                    "user_transcript": f"what did I say about the garden on day {i}?",
                    "llm_response": f"you said the roses needed water ({i}).",
                    "asr_latency_ms": 120, "rag_latency_ms": 40, "llm_latency_ms": 800 + i % 97,
                    "tts_latency_ms": 200, "asr_cost": Decimal("0.000120"),
                    "llm_cost": Decimal("0.002300"), "tts_cost": Decimal("0.000900"),
                    "interrupted": i % 13 == 0, "metadata": {"model": "gpt", "n": i},
                })  # fmt: skip
            store.backend.insert_many(spec, rows)
            made += len(rows)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, Decimal):
        return str(value)
    return value


def raw_dump(path: Path, out: Path) -> None:
    """sqlite3: every table in id order, rows as JSON arrays, gzip."""
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE '%vec%' AND name NOT LIKE 'clonestore_%' ORDER BY name"
    )]  # fmt: skip
    with gzip.open(out, "wb", compresslevel=3) as f:
        for table in tables:
            f.write(json.dumps({"table": table}).encode() + b"\n")
            cursor = conn.execute(f'SELECT * FROM "{table}" ORDER BY id')
            while rows := cursor.fetchmany(BATCH):
                f.write(b"".join(
                    json.dumps([_json_value(v) for v in row], separators=(",", ":")).encode()
                    + b"\n" for row in rows
                ))  # fmt: skip
    conn.close()


def raw_load_sqlite(dump: Path, target: Path) -> None:
    """The raw dump's lines into the tables clonestore made, by executemany."""
    conn = sqlite3.connect(target, isolation_level=None)
    table, batch = "", []

    def flush() -> None:
        if batch:
            marks = ",".join("?" * len(batch[0]))
            conn.execute("BEGIN")
            conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', batch)
            conn.execute("COMMIT")
            batch.clear()

    with gzip.open(dump, "rb") as f:
        for line in f:
            if line.startswith(b"{"):
                flush()
                table = json.loads(line)["table"]
                continue
            batch.append(json.loads(line))
            if len(batch) >= BATCH:
                flush()
    flush()
    conn.close()


def raw_load_postgres(dump: Path, url: str) -> None:
    """The turns of clonestore's dump (typed values: ISO datetimes, decimal strings, which
    PostgreSQL casts) into PostgreSQL by execute_values; the other tables are small."""
    import psycopg2
    import psycopg2.extras

    conn = psycopg2.connect(url)
    table, batch = "", []

    def flush() -> None:
        if batch and table == "turns":
            with conn.cursor() as cur:
                psycopg2.extras.execute_values(
                    cur, 'INSERT INTO "turns" VALUES %s',
                    [tuple(json.dumps(v) if isinstance(v, dict) else v for v in row)
                     for row in batch], page_size=1000,
                )  # fmt: skip
            conn.commit()
        batch.clear()

    with gzip.open(dump, "rb") as f:
        for line in f:
            if line.startswith(b"{"):
                flush()
                table = json.loads(line).get("table", "")
                continue
            batch.append(json.loads(line))
            if len(batch) >= BATCH:
                flush()
    flush()
    conn.close()


def timed(label: str, work: Any) -> float:
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    print(f"  {label:<34} {seconds:8.1f} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-raw", action="store_true",
                        help="skip the raw driver's runs (the ratios): clonestore's times only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        source = tmp / "source.db"
        started = time.perf_counter()
        build_source(source, args.turns)
        print(f"{args.turns} turns built in {time.perf_counter() - started:.0f} s")
        with clonestore.open(f"sqlite:///{source}", plugins=PLUGINS) as store:
            summary: dict[str, Any] = {}

            def dump() -> None:
                summary.update(store.dump(tmp / "dump.gz"))

            dumped = timed("dump (SQLite)", dump)
        print(f"  dump file: {summary['bytes'] / 1e6:.1f} MB, {summary['total_rows']} rows")
        if not args.no_raw:
            raw = timed("raw dump (sqlite3 + json + gzip)",
                        lambda: raw_dump(source, tmp / "raw.gz"))
            print(f"  dump/raw {dumped / raw:.2f}x")
        target = tmp / "target.db"
        with clonestore.open(f"sqlite:///{target}", plugins=PLUGINS) as store:
            loaded = timed("load (SQLite)", lambda: store.load(tmp / "dump.gz"))
        if not args.no_raw:
            raw_target = tmp / "raw_target.db"
            clonestore.open(f"sqlite:///{raw_target}", plugins=PLUGINS).close()
            raw = timed("raw load (sqlite3 executemany)",
                        lambda: raw_load_sqlite(tmp / "raw.gz", raw_target))
            print(f"  load/raw {loaded / raw:.2f}x")
        if not args.no_postgres:
            with throwaway_postgres(args.postgres) as url, clonestore.open(
                url, plugins=PLUGINS
            ) as store:
                loaded = timed("load (PostgreSQL)", lambda: store.load(tmp / "dump.gz"))
            if args.no_raw:
                return
            with throwaway_postgres(args.postgres) as url:
                clonestore.open(url, plugins=PLUGINS).close()
                raw = timed("raw load turns (execute_values)",
                            lambda: raw_load_postgres(tmp / "dump.gz", url))
            print(f"  load/raw {loaded / raw:.2f}x (raw: the turns only)")


if __name__ == "__main__":
    main()
