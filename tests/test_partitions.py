"""The partitioned layout (``?layout=partitioned``, docs/scale-out.md) on PostgreSQL: the
conversion of an existing database (idempotent, rows and chains intact), ids and other
unique keys unique across partitions (concurrent writers included), months created ahead
and for stranded rows, retention dropping whole partitions (turns and the audit log, whose
chains still verify), and plans that skip partitions for a session's turns and a period's
rows (``EXPLAIN``). The option refuses the Citus layout in the same breath.

The contract modules touching turns, sessions, erasure and transfer, and the audit and
maintenance tests, also run on this layout (``[postgres-partitioned]`` in tests/matrix.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

import clonestore
from clonestore import AlreadyExists, ConfigurationError
from clonestore.cli import cli
from clonestore.query import And, Cond
from clonestore.spi import capabilities_of
from clonestore.testing import FrozenClock
from clonestore.testing.contract._builders import race
from tests.matrix import with_layout
from tests.test_citus_layout import _query
from tests.test_citus_layout import fresh as _fresh_database

#: A fresh, empty PostgreSQL database (no layout in the URL), as test_citus_layout's.
fresh = _fresh_database

DAY = 86_400
#: Four months back from the real present: the partitions the conversion creates start
#: at the oldest row's month, those created ahead at the present's.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=120)


def _partitions(url: str, table: str) -> list[str]:
    rows = _query(
        url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) ORDER BY 1",
        (table,),
    )
    return [name for (name,) in rows]


def _kind(url: str, table: str) -> str:
    return str(_query(url, "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)",
                      (table,))[0][0])  # fmt: skip


def _history(store: clonestore.Store, clock: FrozenClock) -> tuple[str, list[str]]:
    """A user with a session whose turns span four months (one every 30 days)."""
    user = store.users.create(email="p@example.com", name="P")
    session = store.sessions.create(user_id=user.id)
    turns = []
    for _ in range(5):
        turns.append(store.sessions.add_turn(session.id, user_transcript="t").id)
        clock.advance(30 * DAY)
    return session.id, turns


def test_an_existing_database_is_converted_once(fresh: str) -> None:
    """A plain database opened with the option: turns and the audit log become
    partitioned by month (from the oldest row's month to three ahead, and a default),
    every row kept, keys carrying the time column; the chains verify; opening again
    changes nothing."""
    clock = FrozenClock(START)
    with clonestore.open(fresh, plugins=["audit"], clock=clock) as store:
        session_id, turn_ids = _history(store, clock)
        before = store.sessions.get_with_turns(session_id)
    assert _kind(fresh, "turns") == "r"
    with clonestore.open(with_layout(fresh, "partitioned"), plugins=["audit"],
                         clock=clock) as store:  # fmt: skip
        assert "time_partitions" in capabilities_of(store.backend)
        assert store.sessions.get_with_turns(session_id) == before
        assert [t.id for t in before.turns] == turn_ids
        assert store.audit.verify().ok
        assert store.backend.apply_partitions() == []
    for table in ("turns", "audit_entries"):
        assert _kind(fresh, table) == "p"
        names = _partitions(fresh, table)
        assert f"{table}_pdefault" in names
        assert f"{table}_p{START:%Y%m}" in names
        assert len(names) >= 5 + 3
    keys = dict(_query(fresh, "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                              "WHERE conrelid = 'turns'::regclass AND contype = 'p'"))  # fmt: skip
    assert keys == {"turns_pkey": "PRIMARY KEY (id, created_at)"}


def test_ids_stay_unique_across_partitions(fresh: str) -> None:
    """A turn id taken in one month is refused in another, naming the column, as on the
    plain layout; of eight racing writers of one id, in eight months, one wins."""
    clock = FrozenClock(START)
    url = with_layout(fresh, "partitioned")
    with clonestore.open(url, clock=clock) as store:
        user = store.users.create(email="u@example.com", name="U")
        first = store.sessions.create(user_id=user.id)
        turn = store.sessions.add_turn(first.id)
        clock.advance(70 * DAY)
        second = store.sessions.create(user_id=user.id)
        with pytest.raises(AlreadyExists) as caught:
            store.sessions.add_turn(second.id, id=turn.id)
        assert caught.value.columns == ("id",)
        assert store.sessions.get(second.id).total_turns == 0
    with clonestore.open(url, clock=clock, pool_size=8) as store:
        sessions = [store.sessions.create(user_id=user.id) for _ in range(8)]
        now = clock()
        errors = race(
            8,
            lambda index: store.sessions.add_turn(
                sessions[index].id, id="raced", created_at=now + timedelta(days=40 * index)
            ),
        )
        assert len(errors) == 7, errors  # one won
        assert all(isinstance(error, AlreadyExists) for error in errors), errors
        assert store.turns.count(where={"id": "raced"}) == 1


def test_rows_of_a_month_without_partition_get_one(fresh: str) -> None:
    """A row for a month with no partition yet waits in the default partition; the
    ``partitions`` maintenance task gives its month a partition and moves it in."""
    clock = FrozenClock(START)
    url = with_layout(fresh, "partitioned")
    with clonestore.open(url, clock=clock) as store:
        user = store.users.create(email="m@example.com", name="M")
        session = store.sessions.create(user_id=user.id)
        turn = store.sessions.add_turn(session.id)
        assert _query(fresh, "SELECT id FROM turns_pdefault") == [(turn.id,)]
        report = store.maintain(tasks=["partitions"])
        assert report.ok
        assert report.tasks[0].removed >= 1
        assert _query(fresh, "SELECT count(*) FROM turns_pdefault") == [(0,)]
        assert _query(fresh, f"SELECT id FROM turns_p{START:%Y%m}") == [(turn.id,)]
        assert store.turns.get(turn.id) == turn


def _plan(url: str, sql: str, params: Any) -> str:
    return "\n".join(row[0] for row in _query(url, "EXPLAIN " + sql, params))


def test_a_sessions_turns_and_a_periods_rows_skip_other_months(fresh: str) -> None:
    """get_with_turns reads turns with created_at >= the session's, so its plan scans
    only the months since the session began; a period's rows only that period's months."""
    clock = FrozenClock(START)
    with clonestore.open(fresh, clock=clock) as store:
        session_id, _ = _history(store, clock)
        late = store.sessions.create(user_id=store.sessions.get(session_id).user_id)
        store.sessions.add_turn(late.id)
    url = with_layout(fresh, "partitioned")
    with clonestore.open(url, clock=clock) as store:
        seen: list[tuple[str, Any]] = []
        execute = store.backend.execute

        def spy(sql: str, params: Any, mode: int) -> Any:
            seen.append((sql, params))
            return execute(sql, params, mode)

        store.backend.execute = spy
        assert len(store.sessions.get_with_turns(late.id).turns) == 1
        (sql, params), *_ = [(s, p) for s, p in seen if '"turns"' in s]
    plan = _plan(fresh, sql, params)
    assert f"turns_p{clock():%Y%m}" in plan
    assert f"turns_p{START:%Y%m}" not in plan, plan
    month = START.replace(day=1, hour=0, minute=0, second=0)
    period = _plan(fresh, "SELECT id FROM turns WHERE created_at >= %s AND created_at < %s",
                   (month, month + timedelta(days=28)))  # fmt: skip
    assert f"turns_p{START:%Y%m}" in period
    assert period.count("turns_p") == 1, period


def test_retention_drops_whole_partitions_and_chains_verify(fresh: str) -> None:
    """Turns and audit entries past retention go: the months wholly past it as whole
    partitions (dropped), the rest row by row; sessions keep their totals; every audit
    chain still verifies, anchored across the dropped months."""
    clock = FrozenClock(START)
    with clonestore.open(fresh, plugins=["audit"], clock=clock) as store:
        session_id, turn_ids = _history(store, clock)
    url = with_layout(fresh, "partitioned")
    with clonestore.open(url, plugins=["audit"], clock=clock) as store:
        turns_before = _partitions(fresh, "turns")
        audit_before = _partitions(fresh, "audit_entries")
        report = store.maintain(retention={"turns": 45, "audit.purge": 45})
        assert report.ok, report
        tasks = {task.name: task for task in report.tasks}
        assert tasks["turns"].removed == 4  # START + 0, 30, 60, 90 days; cutoff + 105
        assert tasks["audit.purge"].removed > 0
        left = [t.id for t in store.sessions.get_with_turns(session_id).turns]
        assert left == turn_ids[4:]
        assert store.sessions.get(session_id).total_turns == 5
        assert store.audit.verify().ok
    gone = set(turns_before) - set(_partitions(fresh, "turns"))
    assert f"turns_p{START:%Y%m}" in gone
    assert f"audit_entries_p{START:%Y%m}" in set(audit_before) - set(
        _partitions(fresh, "audit_entries")
    )


def test_the_partitioned_and_citus_layouts_do_not_combine(fresh: str) -> None:
    """Asking for both is refused at open, saying why; an unknown layout too."""
    with pytest.raises(ConfigurationError, match="do not combine"):
        clonestore.open(with_layout(fresh, "citus,partitioned"))
    with pytest.raises(ConfigurationError, match="expected one of"):
        clonestore.open(with_layout(fresh, "sharded"))


def test_migrate_takes_the_layout_as_a_flag(fresh: str, tmp_path: Any) -> None:
    """``clonestore migrate --layout partitioned`` is the URL option: it converts the
    database; a contradicting URL or a non-PostgreSQL store is refused, changing nothing."""
    runner = CliRunner()
    done = runner.invoke(cli, ["migrate", "--url", fresh, "--plugins", "audit",
                               "--layout", "partitioned"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "layout=partitioned" in done.output
    assert _kind(fresh, "turns") == "p"
    assert _kind(fresh, "audit_entries") == "p"
    clash = runner.invoke(cli, ["migrate", "--url", with_layout(fresh), "--layout", "partitioned"])
    assert clash.exit_code != 0
    assert "contradicts the URL's layout=citus" in clash.output
    sqlite = f"sqlite:///{tmp_path / 'db.sqlite'}"
    refused = runner.invoke(cli, ["migrate", "--url", sqlite, "--layout", "partitioned"])
    assert refused.exit_code != 0
    assert "--layout is an option of postgresql:// stores" in refused.output
    assert not (tmp_path / "db.sqlite").exists()


def test_open_async_on_the_layout(fresh: str) -> None:
    """open_async (asyncpg) with the option converts and works the same: a turn's
    duplicate id refused naming id, the session's turns read back."""
    import asyncio

    async def scenario() -> None:
        store = await clonestore.open_async(with_layout(fresh, "partitioned"))
        try:
            user = await store.users.create(email="a@example.com", name="A")
            session = await store.sessions.create(user_id=user.id)
            turn = await store.sessions.add_turn(session.id)
            with pytest.raises(AlreadyExists) as caught:
                await store.sessions.add_turn(session.id, id=turn.id)
            assert caught.value.columns == ("id",)
            assert (await store.sessions.get_with_turns(session.id)).turns == [turn]
        finally:
            await store.close()

    asyncio.run(scenario())
    assert _kind(fresh, "turns") == "p"


def test_an_audit_chains_seq_stays_unique_across_months(fresh: str) -> None:
    """An audit entry repeating an owner's seq in another month is refused naming
    (owner, seq), as the plain layout's unique index refuses it; the chain verifies."""
    from clonestore_audit._tables import LOG

    clock = FrozenClock(START)
    with clonestore.open(with_layout(fresh, "partitioned"), plugins=["audit"],
                         clock=clock) as store:  # fmt: skip
        store.users.create(email="s@example.com", name="S")
        assert store.maintain(tasks=["partitions"]).ok  # the entry's month gets its partition
        (entry,) = store.backend.select(LOG, And((Cond("seq", "eq", 1),)), limit=1)
        later = entry["stamp"] + 120 * DAY * 1_000_000  # the present month's partition
        assert _query(fresh, f"SELECT count(*) FROM audit_entries_p{START:%Y%m}") == [(1,)]
        with pytest.raises(AlreadyExists) as caught:
            store.backend.insert(LOG, {**entry, "id": "another", "stamp": later})
        assert caught.value.columns == ("owner", "seq")
        assert store.audit.verify().ok
