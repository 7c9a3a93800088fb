"""Helpers for the plugin tests: a clock tests move by hand, and an audit log
emptied before and after each test on PostgreSQL.

The backend matrix itself (``clonestore_url``, ``store_factory``) comes from
``tests/matrix.py`` and the ``clonestore.testing`` pytest plugin.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from clonestore.testing import FrozenClock

START = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that moves only when told to, starting at 2030-01-01 12:00:00 UTC."""
    return FrozenClock(START)


class _Abort(Exception):
    pass


@contextmanager
def rolled_back(store: Any) -> Iterator[None]:
    """Run the block in ``store.transaction()``, then roll it back."""
    try:
        with store.transaction():
            yield
            raise _Abort
    except _Abort:
        pass


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql:", "postgres:"))


def pg_execute(
    url: str, *statements: str | tuple[str, tuple[Any, ...]], replica: bool = False
) -> list[Any]:
    """Run statements (SQL, or (SQL, params)) on their own connection; ``replica``
    disables triggers for the session (superuser), as a tamperer would."""
    import psycopg2

    conn = psycopg2.connect(url.partition("?")[0])  # the store's options are not libpq's
    try:
        conn.autocommit = True
        out: list[Any] = []
        with conn.cursor() as cur:
            if replica:
                cur.execute("SET session_replication_role = replica")
            for statement in statements:
                sql, params = statement if isinstance(statement, tuple) else (statement, ())
                cur.execute(sql, params or None)
                out.append(cur.fetchall() if cur.description else cur.rowcount)
        return out
    finally:
        conn.close()


def _empty_audit_log(url: str) -> None:
    # The audit trigger refuses DELETE, so the test kit's table wipe would fail
    # on a non-empty log: empty it through the purge function, as purge() does.
    pg_execute(
        url,
        """
        DO $$ BEGIN
          IF to_regprocedure('clonestore_purge_audit_entries(bigint)') IS NOT NULL THEN
            PERFORM clonestore_purge_audit_entries(9223372036854775807);
            DELETE FROM audit_heads;
            DELETE FROM audit_purges;
          END IF;
        END $$
        """,
    )


@pytest.fixture(autouse=True)
def empty_audit_log(request: pytest.FixtureRequest) -> Iterator[None]:
    """On PostgreSQL, every test starts and ends with an empty audit log."""
    url = None
    for name in ("clonestore_url", "postgres_url"):
        if name in request.fixturenames:
            url = request.getfixturevalue(name)
            break
    if url is None or not is_postgres(url):
        yield
        return
    _empty_audit_log(url)
    yield
    _empty_audit_log(url)
