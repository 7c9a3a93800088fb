"""``store.maintain()``: how fast each task removes what is due, in batches.

Fills ``--rows`` expired cache entries, ended rate-limit windows, audit entries
past 90 days and soft-deleted documents (older than the retention given), then
times one ``maintain()`` run per backend and prints rows per second per task.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

from timing import add_postgres_url, database

import clonestore
from clonestore.testing import FrozenClock


def bench(url: str, rows: int, batch_size: int) -> None:
    clock = FrozenClock(datetime(2030, 1, 1, tzinfo=UTC))
    with clonestore.open(url, plugins=["cache", "ratelimit", "audit"], clock=clock) as store:
        user = store.users.create(email="a@example.com", name="A")
        for i in range(rows):
            store.cache.set_embedding(f"{i:064x}", [0.5, 0.25], model="m")
            store.ratelimit.check_and_increment(f"k{i}", "chat", 10, 60)
        docs = store.documents.create_many(
            [{"user_id": user.id, "filename": f"{i}.txt"} for i in range(rows)]
        )
        with store.transaction():
            for doc in docs:
                store.documents.delete(doc.id)  # audited: entries for audit.purge too
        clock.advance(timedelta(days=91).total_seconds())
        report = store.maintain(retention={"soft_deleted": 30}, batch_size=batch_size,
                                time_limit=3600)
        for task in report.tasks:
            rate = task.removed / task.seconds if task.seconds else 0.0
            print(f"  {task.name:18} removed {task.removed:7} in {task.seconds:7.2f} s "
                  f"({rate:8.0f} rows/s)")
        assert store.audit.verify().ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="memory,sqlite,postgres")
    parser.add_argument("--rows", type=int, default=5_000, help="rows due per task")
    parser.add_argument("--batch-size", type=int, default=1_000)
    add_postgres_url(parser)
    args = parser.parse_args(argv)
    for backend in args.backends.split(","):
        print(f"\n== {backend}: {args.rows} rows due per task, batches of {args.batch_size}")
        with database(backend, args.postgres_url) as url:
            bench(url, args.rows, args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
