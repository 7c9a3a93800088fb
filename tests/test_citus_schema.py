"""The schema stays compatible with Citus (docs/scale-out.md): every user-owned table
carries ``user_id``, every unique constraint of a distributed table includes its
distribution column or is rewritten as the document's table says, and reads through
``store.for_user`` carry ``user_id`` so Citus can route them to one shard.

These tests check the record specs against the document's rules; the layout that
applies them (``?layout=citus``) is tested by tests/test_citus_layout.py and the kit's
``[postgres-citus-layout]`` entry, and was run on a real cluster (docs/scale-out.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import clonestore
from clonestore.query import And, Cond
from clonestore.records import TABLES

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "scale-out.md"


def _rows(marker: str) -> list[list[str]]:
    """The cells of the document's table between ``<!-- marker ... -->`` and its end."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(rf"<!-- {marker}.*?-->(.*?)<!-- /{marker} -->", text, re.S)
    assert block, f"docs/scale-out.md has no {marker} table"
    lines = block.group(1).strip().splitlines()[2:]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


def _table_types() -> dict[str, tuple[str, str]]:
    """table -> (Citus table type, distribution column), from the document's mapping."""
    out = {}
    for names, kind, column in _rows("citus-tables"):
        for name in re.findall(r"`(\w+)`", names):
            distribution = column.split()[0].strip("`") if column else ""
            out[name] = (kind.split()[0].rstrip(","), distribution)
    return out


TYPES = _table_types()
DISTRIBUTED = {name for name, (kind, _) in TYPES.items() if kind == "distributed"}
DISTRIBUTION_COLUMN = {name: TYPES[name][1] for name in DISTRIBUTED}


def _documented_constraints() -> dict[tuple[str, str], str]:
    """(table, constraint as written) -> its form on Citus, from the document's table."""
    rows = {}
    for table, constraint, on_citus, why in _rows("citus-constraints"):
        assert why, f"no reason given for {table} {constraint}"
        code = re.match(r"`([^`]+)`", constraint)
        assert code, f"constraint cell without code: {constraint}"
        rows[(table.strip("`"), code.group(1))] = on_citus
    return rows


def _written(spec, unique) -> str:
    text = f"UNIQUE ({', '.join(unique.columns)})"
    if unique.when:
        text += " WHERE " + " AND ".join(c for c, v in unique.when if v is True)
    return text


def test_every_table_has_a_documented_citus_type():
    """Each domain table is in the document's mapping (distributed or reference), and
    users and the user-owned tables are distributed by the user's id."""
    assert set(TYPES) == set(TABLES)
    assert {kind for kind, _ in TYPES.values()} <= {"distributed", "reference"}
    assert DISTRIBUTION_COLUMN["users"] == "id"
    owned = {name for name, spec in TABLES.items() if "user_id" in spec.by_name}
    assert owned <= DISTRIBUTED
    assert all(DISTRIBUTION_COLUMN[name] == "user_id" for name in owned)


def test_every_user_owned_table_carries_user_id():
    """Each distributed table but users has a required user_id column of kind id."""
    for name in DISTRIBUTED - {"users"}:
        column = TABLES[name].by_name.get("user_id")
        assert column is not None, f"{name} has no user_id: it cannot be distributed"
        assert column.kind == "id"
        assert not column.nullable, f"{name}.user_id is nullable"


def test_unique_constraints_include_the_distribution_column_or_are_documented():
    """A unique constraint without the distribution column is listed, with its Citus form
    (which adds the distribution column, or moves the constraint to its own table), in
    docs/scale-out.md; every listed constraint exists."""
    documented = _documented_constraints()
    seen = set()
    for name in DISTRIBUTED:
        spec = TABLES[name]
        column = DISTRIBUTION_COLUMN[name]
        for unique in spec.unique:
            written = _written(spec, unique)
            if column in unique.columns:
                continue
            key = (name, written)
            assert key in documented, f"{name}: {written} lacks {column} and is not documented"
            seen.add(key)
            on_citus = documented[key]
            assert column in on_citus or "separate table" in on_citus, on_citus
    listed_without = {
        k for k, v in documented.items() if v != "as is" and "PRIMARY KEY" not in k[1]
    }
    assert listed_without == seen, "the document lists constraints the schema no longer has"
    for (name, written), on_citus in documented.items():
        if on_citus == "as is":
            spec = TABLES[name]
            assert written in {_written(spec, u) for u in spec.unique}, (name, written)


def test_turns_rewrite_is_the_same_constraint(clonestore_url):
    """The rewrite of turns' key to (user_id, session_id, turn_index) accepts the same rows:
    a turn's user_id is always its session's."""
    with clonestore.open(clonestore_url) as store:
        user = store.users.create(email=f"citus-{id(store)}@example.com", name="C")
        session = store.sessions.create(user_id=user.id)
        turn = store.sessions.add_turn(session.id, llm_latency_ms=1)
        assert turn.user_id == session.user_id == user.id


class _Reads:
    def __init__(self):
        self.ops = []

    @clonestore.hookimpl
    def clonestore_read(self, store, op, fetch):
        self.ops.append(op)


def _fixes(where, column: str, value: str) -> bool:
    """Whether ``where`` is ``column == value`` or a conjunction (nested or not) containing it."""
    if isinstance(where, And):
        return any(_fixes(item, column, value) for item in where.items)
    return isinstance(where, Cond) and (where.column, where.op, where.value) == (
        column,
        "eq",
        value,
    )


def test_scoped_reads_carry_the_distribution_column():
    """Through for_user, every filtered read of a distributed table (the turns of
    get_with_turns, lists, counts, statistics) fixes user_id: a Citus router query."""
    reads = _Reads()
    with clonestore.open("memory://", plugins=[reads]) as store:
        user = store.users.create(email="router@example.com", name="R")
        session = store.sessions.create(user_id=user.id)
        store.sessions.add_turn(session.id, llm_latency_ms=1)
        view = store.for_user(user.id)
        reads.ops.clear()
        view.sessions.get_with_turns(session.id)
        view.sessions.find_many()
        view.documents.count()
        view.memories.find_many(where={"memory_type": "fact"})
        view.sessions.user_statistics(user.id)
        filtered = [op for op in reads.ops if op.where is not None]
        assert {op.table.name for op in filtered} >= {"turns", "sessions", "documents", "memories"}
        for op in filtered:
            column = DISTRIBUTION_COLUMN[op.table.name]
            assert _fixes(op.where, column, user.id), (op.action, op.where)
