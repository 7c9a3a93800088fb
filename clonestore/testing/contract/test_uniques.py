"""Contract: unique constraints compare values exactly and hold under races.

A unique constraint compares values as the rows hold them: code point for
code point, never through a collation that folds case, accents or trailing
spaces (MariaDB's and MySQL's default collations do; cache and rate-limit
keys that differ only in case must stay two rows). And it holds when many
writers race for one key, on insert and on update, round after round.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Final

import pytest

from clonestore import AlreadyExists, Store
from clonestore.query import TRUE, And, Cond, OrderBy
from clonestore.spi import Backend, Column, Row, TableSpec, Unique
from clonestore.testing.contract._builders import race

#: Keys that a collation folding case, accents, width or trailing spaces would merge.
LOOKALIKES: Final = (
    "key",
    "Key",
    "KEY",
    "key ",
    " key",
    "key\t",
    "kéy",
    "ke\u0301y",  # the same letter decomposed: only code points tell them apart
    "\uff4b\uff45\uff59",  # fullwidth "key"
    "straße",
    "strasse",
    "STRASSE",
    "ǆ",
    "ǅ",
    "Ǆ",
    "k",
    "\u212a",  # Kelvin sign
    "\u0131",  # dotless i
    "i",
    "\u0130",  # capital I with dot
)

NAMES = TableSpec(
    name="contract_unique_names",
    columns=(
        Column(name="id", kind="id"),
        Column(name="code", kind="key"),
        Column(name="title", kind="text", nullable=True),
        Column(name="n", kind="int"),
    ),
    unique=(Unique(("code",)), Unique(("title",))),
)

SEATS = TableSpec(
    name="contract_unique_seats",
    columns=(
        Column(name="id", kind="id"),
        Column(name="owner", kind="key"),
        Column(name="seat", kind="int"),
        Column(name="active", kind="bool"),
    ),
    unique=(Unique(("owner", "seat")), Unique(("owner",), when=(("active", True),))),
)

#: Rounds of each race, and writers per round: enough that a missing lock or a
#: check-then-write fails every run, not one run in two.
ROUNDS: Final = 15
WRITERS: Final = 6


def _fresh(store: Store, spec: TableSpec) -> Backend:
    backend = store.backend
    backend.create_tables([spec])
    backend.delete(spec, TRUE)
    return backend


def _name(code: str, title: str | None = None, n: int = 0) -> Row:
    return {"id": str(uuid.uuid4()), "code": code, "title": title, "n": n}


def _insert_lookalike(backend: Backend, row: Row, value: str, earlier: tuple[str, ...]) -> None:
    try:
        backend.insert(NAMES, row)
    except AlreadyExists:
        pytest.fail(
            f"{value!r} was refused as a duplicate of one of {earlier!r}: the unique "
            "constraint compares through a collation folding case, accents or trailing "
            "spaces; it must compare code points (a binary collation: utf8mb4_bin, "
            'COLLATE "C", BINARY)',
            pytrace=False,
        )


def test_unique_keys_compare_code_point_for_code_point(store: Store) -> None:
    """Keys differing only in case, accents, width or spaces are distinct unique keys."""
    backend = _fresh(store, NAMES)
    for i, code in enumerate(LOOKALIKES):
        _insert_lookalike(backend, _name(code, n=i), code, LOOKALIKES[:i])
    stored = {r["code"]: r["n"] for r in backend.select(NAMES, TRUE, [OrderBy("id")])}
    assert stored == {code: i for i, code in enumerate(LOOKALIKES)}
    for code in LOOKALIKES:
        with pytest.raises(AlreadyExists):
            backend.insert(NAMES, _name(code))
        got = backend.select(NAMES, Cond("code", "eq", code))
        assert [r["code"] for r in got] == [code], f"eq {code!r} found {[r['code'] for r in got]}"


def test_unique_text_compares_code_point_for_code_point(store: Store) -> None:
    """A unique text column holds values differing only in case or trailing spaces."""
    backend = _fresh(store, NAMES)
    for i, title in enumerate(LOOKALIKES):
        _insert_lookalike(backend, _name(f"c{i}", title=title), title, LOOKALIKES[:i])
    assert backend.count(NAMES, TRUE) == len(LOOKALIKES)
    with pytest.raises(AlreadyExists):
        backend.insert(NAMES, _name("again", title="Key"))


def test_upsert_keys_compare_code_point_for_code_point(store: Store) -> None:
    """An upsert on a key touches only the row with exactly that key, never a lookalike."""
    backend = _fresh(store, NAMES)
    for code in LOOKALIKES:
        backend.upsert(NAMES, ("code",), _name(code, n=1), {"n": 100})
    backend.upsert(NAMES, ("code",), _name("Key", n=1), {"n": 2})
    counts = {r["code"]: r["n"] for r in backend.select(NAMES, TRUE, [OrderBy("id")])}
    assert counts == {code: (2 if code == "Key" else 1) for code in LOOKALIKES}


_RACE_CAUSE: Final = (
    "round {round}: {won} of {writers} racing writes of one unique key succeeded: the unique "
    "check and the write are not one atomic step (a check-then-write without a lock, or a "
    "constraint the engine does not enforce)"
)


def _race(writers: int, write: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run ``write(i)`` in ``writers`` threads released at once; results and
    AlreadyExists raised, in no order (anything else fails the test)."""
    results: list[Any] = []
    refused: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results.append(write(i))
        except AlreadyExists as exc:
            refused.append(exc)

    unexpected = race(writers, run, timeout=60)
    assert not unexpected, unexpected
    return results, refused


def test_unique_holds_when_inserts_race(store: Store) -> None:
    """Of writers racing to insert one unique key, exactly one wins, round after round."""
    backend = _fresh(store, NAMES)
    for round_ in range(ROUNDS):
        code = f"race-{round_}"

        def insert(i: int, code: str = code) -> None:
            backend.insert(NAMES, _name(code, n=i))

        won, refused = _race(WRITERS, insert)
        assert (len(won), len(refused)) == (1, WRITERS - 1), _RACE_CAUSE.format(
            round=round_, won=len(won), writers=WRITERS
        )
        assert backend.count(NAMES, Cond("code", "eq", code)) == 1, f"round {round_}"


def test_partial_unique_holds_when_updates_race(store: Store) -> None:
    """Of writers racing to activate a row in one ``when`` group, one wins, every round."""
    backend = _fresh(store, SEATS)
    for round_ in range(ROUNDS):
        owner = f"owner-{round_}"
        seats = [
            {"id": str(uuid.uuid4()), "owner": owner, "seat": i, "active": False}
            for i in range(WRITERS)
        ]
        backend.insert_many(SEATS, seats)

        def activate(i: int, seats: list[Row] = seats) -> list[Row]:
            return backend.update(SEATS, Cond("id", "eq", seats[i]["id"]), {"active": True})

        won, refused = _race(WRITERS, activate)
        assert (len(won), len(refused)) == (1, WRITERS - 1), _RACE_CAUSE.format(
            round=round_, won=len(won), writers=WRITERS
        )
        active = And((Cond("owner", "eq", owner), Cond("active", "eq", True)))
        assert backend.count(SEATS, active) == 1, f"round {round_}"


def _seat(**values: Any) -> Row:
    return {"id": str(uuid.uuid4()), **values}


def _violated(write: Callable[[], object]) -> tuple[str, ...]:
    with pytest.raises(AlreadyExists) as caught:
        write()
    return caught.value.columns


def test_already_exists_names_the_violated_columns(store: Store) -> None:
    """AlreadyExists.columns names the violated constraint's columns on every write."""
    backend = _fresh(store, SEATS)
    first = {"id": str(uuid.uuid4()), "owner": "ann", "seat": 1, "active": True}
    backend.insert(SEATS, first)
    other = {"id": str(uuid.uuid4()), "owner": "bob", "seat": 1, "active": False}
    backend.insert(SEATS, other)
    clash_pair = _seat(owner="ann", seat=1, active=False)
    clash_active = _seat(owner="ann", seat=2, active=True)
    assert _violated(lambda: backend.insert(SEATS, {**other, "owner": "cy"})) == ("id",)
    assert _violated(lambda: backend.insert(SEATS, clash_pair)) == ("owner", "seat")
    assert _violated(lambda: backend.insert(SEATS, clash_active)) == ("owner",)
    batch = [_seat(owner="dee", seat=1, active=False), clash_pair]
    assert _violated(lambda: backend.insert_many(SEATS, batch)) == ("owner", "seat")
    bob = Cond("id", "eq", other["id"])
    assert _violated(lambda: backend.update(SEATS, bob, {"owner": "ann"})) == ("owner", "seat")
    assert _violated(
        lambda: backend.update(SEATS, bob, {"owner": "ann", "seat": 2, "active": True})
    ) == ("owner",)
    assert _violated(
        lambda: backend.upsert(SEATS, ("owner", "seat"), clash_active, {"seat": 3})
    ) == ("owner",)
    assert backend.select(SEATS, TRUE, (OrderBy("owner"), OrderBy("seat"))) == [first, other]


def test_already_exists_from_a_repository_names_the_fields(store: Store) -> None:
    """A repository's AlreadyExists.columns names the caller's fields (email, not email_key)."""
    store.users.create(email="taken@example.com", name="One")
    with pytest.raises(AlreadyExists) as caught:
        store.users.create(email="TAKEN@example.com", name="Two")
    assert caught.value.columns == ("email",)
    assert "email" in str(caught.value)
