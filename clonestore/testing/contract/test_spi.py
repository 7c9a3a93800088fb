"""Contract: the storage SPI, spoken to directly (``store.backend``) over hand-written
table specs. The reference meaning of every call is in :mod:`clonestore.spi`
(``matches``, ``sort_rows``, ``apply_changes``); these tests hold a backend to it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import pytest

from clonestore import AlreadyExists, Store
from clonestore.query import FALSE, TRUE, And, Cond, Expr, Or, OrderBy
from clonestore.spi import (
    API_VERSION,
    DECLARED_CAPABILITIES,
    Aggregate,
    Backend,
    Column,
    Increment,
    Index,
    Row,
    TableSpec,
    Unique,
)
from clonestore.spi_reference import matches, sort_rows
from clonestore.testing.contract._builders import aborted
from clonestore.testing.differential import canon

ITEMS = TableSpec(
    name="contract_spi_items",
    columns=(
        Column(name="id", kind="id"),
        Column(name="code", kind="key", nullable=True),
        Column(name="label", kind="text", nullable=True),
        Column(name="n", kind="int", nullable=True),
        Column(name="score", kind="float", nullable=True),
        Column(name="amount", kind="decimal", nullable=True),
        Column(name="flag", kind="bool", nullable=True),
        Column(name="at", kind="datetime", nullable=True),
        Column(name="ref", kind="id", nullable=True),
        Column(name="tags", kind="list", nullable=True),
        Column(name="data", kind="json", nullable=True),
        Column(name="vec", kind="vector", nullable=True),
        Column(name="deleted_at", kind="datetime", nullable=True),
    ),
    unique=(Unique(("code",)),),
    indexes=(Index(("n",)), Index(("label",))),
)

SLOTS = TableSpec(
    name="contract_spi_slots",
    columns=(
        Column(name="id", kind="id"),
        Column(name="owner", kind="key"),
        Column(name="slot", kind="int"),
        Column(name="active", kind="bool"),
        Column(name="hits", kind="int"),
        Column(name="total", kind="decimal"),
        Column(name="note", kind="text", nullable=True),
    ),
    unique=(Unique(("owner", "slot")), Unique(("owner",), when=(("active", True),))),
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


def _item(**values: Any) -> Row:
    row: Row = {c.name: None for c in ITEMS.columns}
    row["id"] = _new_id()
    row.update(values)
    return row


def _slot(owner: str, slot: int, **values: Any) -> Row:
    row: Row = {
        "id": _new_id(),
        "owner": owner,
        "slot": slot,
        "active": False,
        "hits": 0,
        "total": Decimal("0.000000"),
        "note": None,
    }
    row.update(values)
    return row


def _fresh(store: Store, *specs: TableSpec) -> Backend:
    """Create the tables and empty them: they outlive tests on shared servers."""
    backend = store.backend
    backend.create_tables(list(specs))
    for spec in specs:
        backend.delete(spec, TRUE)
    return backend


def _get(backend: Backend, spec: TableSpec, id: str) -> Row:
    row = backend.get(spec, id)
    assert row is not None, f"{spec.name}: no row {id}"
    return row


def _ids(rows: list[Row]) -> list[str]:
    return [r["id"] for r in rows]


def _by_id(rows: list[Row]) -> list[Row]:
    return sort_rows(list(rows), [OrderBy("id")])


#: Rows exercising NULLs, ties, case, accents, LIKE metacharacters and number shapes.
def _sample() -> list[Row]:
    return [
        _item(
            code="a",
            label="apple",
            n=3,
            score=0.5,
            amount=Decimal("10.000000"),
            flag=True,
            at=T0,
            tags=["x", "y"],
        ),
        _item(
            code="b",
            label="Apple",
            n=-7,
            score=1.5,
            amount=Decimal("9.500000"),
            flag=False,
            at=T0 + timedelta(microseconds=1),
            tags=["y"],
        ),
        _item(code="c", label="äpple", n=3, score=None, amount=Decimal("-0.000001"), tags=[]),
        _item(code=None, label="50% off", n=None, score=-2.0, flag=True, tags=["x", "x"]),
        _item(code="e", label="a_b", n=0, amount=Decimal("100.000000"), at=T0 - timedelta(days=1)),
        _item(code="f", label="a\\b", n=2**62, score=0.5, flag=False, tags=["z", "%"]),
        _item(code="g", label=None, n=3, at=T0, tags=None),
        _item(code="h", label="", n=-(2**63), amount=Decimal("10.000000"), tags=["Y"]),
        _item(code="i", label="😀 emoji", n=1, score=1e-300, tags=["y", "x", "w"]),
    ]


def _loaded(store: Store) -> tuple[Backend, list[Row]]:
    backend = _fresh(store, ITEMS)
    rows = _sample()
    backend.insert_many(ITEMS, rows)
    return backend, rows


def _expect(
    backend: Backend, rows: list[Row], where: Expr, order: tuple[OrderBy, ...] | None = None
) -> None:
    order = order or (OrderBy("id"),)
    got = _ids(backend.select(ITEMS, where, order))
    want = _ids(sort_rows([r for r in rows if matches(where, r)], order))
    assert got == want, f"{where}: got {got}, want {want}"


# ----------------------------------------------------------------------------- shape


def test_spi_backend_satisfies_the_protocol(store: Store) -> None:
    """store.backend implements Backend, has a name, an API version and known capabilities."""
    backend = store.backend
    assert isinstance(backend, Backend)
    assert isinstance(backend.name, str)
    assert backend.name
    assert 1 <= getattr(backend, "api_version", API_VERSION) <= API_VERSION
    assert set(backend.capabilities) <= DECLARED_CAPABILITIES, "known, without a protocol"


def test_spi_health(store: Store) -> None:
    """health() says ok and names the backend."""
    health = store.backend.health()
    assert health["ok"] is True
    assert health["backend"] == store.backend.name


def test_spi_create_tables_is_idempotent(store: Store) -> None:
    """create_tables() again keeps existing rows."""
    backend = _fresh(store, ITEMS)
    row = _item(code="keep")
    backend.insert(ITEMS, row)
    backend.create_tables([ITEMS])
    assert backend.get(ITEMS, row["id"]) == row


# ----------------------------------------------------------------------------- insert / get


def test_spi_insert_get_round_trips_every_kind(store: Store) -> None:
    """A row read back equals the row written, value and type, for every column kind."""
    backend = _fresh(store, ITEMS)
    rows = [
        _item(
            code="k-1",
            label="héllo 😀 \u2028 'quoted' \"double\" \\ %_",
            n=2**63 - 1,
            score=0.1,
            amount=Decimal("999999999999.999999"),
            flag=True,
            at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
            ref=_new_id(),
            tags=["b", "a", "b", "", "a,b", "{}", "NULL", '"', "\\"],
            data={"i": 1, "f": 1.0, "s": "x", "l": [1, 2.5, None, True], "o": {}, "big": 2**63 - 1},
            vec=[0.10000000149011612, -(2.0**-149), 3.4028234663852886e38, 0.0],  # float32 values
        ),
        _item(
            code="k-2",
            label="",
            n=-(2**63),
            score=-2.5e-10,
            amount=Decimal("-999999999999.999999"),
            flag=False,
            at=datetime(1, 1, 1, tzinfo=UTC),
            tags=[],
            data=[],
            vec=[1.0],
        ),
        _item(data="just a string"),
        _item(data=0),
        _item(data=False),
        _item(amount=Decimal("0.000000"), data={"nested": {"deep": [[[]]]}}),
    ]
    for row in rows:
        backend.insert(ITEMS, row)
    for row in rows:
        stored = _get(backend, ITEMS, row["id"])
        assert stored == row
        for name, value in row.items():
            assert type(stored[name]) is type(value), (name, stored[name], value)
        if row["amount"] is not None:
            assert str(stored["amount"]) == str(row["amount"])
        if row["at"] is not None:
            assert stored["at"].utcoffset() == timedelta(0)


#: JSON values whose meaning dict and list equality cannot see: key order (``==`` ignores
#: it), ``1`` / ``1.0`` / ``True`` (equal under ``==``), ``-0.0``, 64-bit edges.
JSON_VALUES: Final = (
    {"zebra": 1, "apple": 2, "mango": {"y": [], "x": {}}, "": None, "Apple": 3, "10": 4, "9": 5},
    {"b": {"d": 1, "c": 2}, "a": [{"z": 0, "y": 1}, {"y": 1, "z": 0}]},
    {"int": 1, "float": 1.0, "true": True, "zero": 0, "fzero": 0.0, "false": False},
    [1, 1.0, True, 0, 0.0, False, -0.0, None],
    {"big": 2**63 - 1, "small": -(2**63), "huge": 1e16, "tiny": 5e-324, "third": 1 / 3},
    {"é": "e\u0301", "😀": ["\u2028", "\\", '"'], "key ": "Key"},
    [[], {}, [[]], [{}], ""],
    1.0,
    True,
)


def test_spi_json_round_trips_exactly(store: Store) -> None:
    """JSON reads back exactly: key order, 1 vs 1.0 vs True, -0.0, 64-bit edges (not ==)."""
    backend = _fresh(store, ITEMS)
    rows = [_item(data=value) for value in JSON_VALUES]
    for row in rows:
        backend.insert(ITEMS, row)
    for row in rows:
        stored = _get(backend, ITEMS, row["id"])["data"]
        assert canon(stored) == canon(row["data"]), f"stored {stored!r}, wrote {row['data']!r}"
    for row, value in zip(rows, reversed(JSON_VALUES), strict=True):
        (updated,) = backend.update(ITEMS, Cond("id", "eq", row["id"]), {"data": value})
        assert canon(updated["data"]) == canon(value), f"update returned {updated['data']!r}"
        stored = _get(backend, ITEMS, row["id"])["data"]
        assert canon(stored) == canon(value), f"stored {stored!r}, wrote {value!r}"


def test_spi_get_missing_returns_none(store: Store) -> None:
    """get() of an unknown id returns None."""
    backend = _fresh(store, ITEMS)
    assert backend.get(ITEMS, _new_id()) is None


def test_spi_rows_are_copies(store: Store) -> None:
    """Changing a row after insert, or one returned by a read, changes nothing stored."""
    backend = _fresh(store, ITEMS)
    row = _item(tags=["a"], data={"k": [1]}, vec=[1.0])
    backend.insert(ITEMS, row)
    row["tags"].append("mutated")
    row["data"]["k"].append(2)
    read = _get(backend, ITEMS, row["id"])
    assert read["tags"] == ["a"]
    read["tags"].append("again")
    read["data"]["k"].append(3)
    backend.select(ITEMS, TRUE)[0]["vec"].append(2.0)
    again = _get(backend, ITEMS, row["id"])
    assert (again["tags"], again["data"], again["vec"]) == (["a"], {"k": [1]}, [1.0])


def test_spi_insert_duplicate_id_raises_already_exists(store: Store) -> None:
    """Inserting a second row with an existing id raises AlreadyExists."""
    backend = _fresh(store, ITEMS)
    row = _item(code="one")
    backend.insert(ITEMS, row)
    with pytest.raises(AlreadyExists):
        backend.insert(ITEMS, dict(row, code="two"))
    assert backend.select(ITEMS, TRUE) == [row]


def test_spi_unique_violation_raises_already_exists(store: Store) -> None:
    """A unique value used twice raises AlreadyExists; NULLs never conflict."""
    backend = _fresh(store, ITEMS)
    backend.insert(ITEMS, _item(code="same"))
    with pytest.raises(AlreadyExists):
        backend.insert(ITEMS, _item(code="same"))
    backend.insert(ITEMS, _item(code=None))
    backend.insert(ITEMS, _item(code=None))
    assert backend.count(ITEMS, TRUE) == 3


def test_spi_unique_holds_among_live_rows_only(store: Store) -> None:
    """On a table with deleted_at, a unique value may repeat among deleted rows only."""
    backend = _fresh(store, ITEMS)
    deleted = _item(code="reused", deleted_at=T0)
    backend.insert(ITEMS, deleted)
    backend.insert(ITEMS, _item(code="reused", deleted_at=T0))
    live = _item(code="reused")
    backend.insert(ITEMS, live)
    with pytest.raises(AlreadyExists):
        backend.insert(ITEMS, _item(code="reused"))
    with pytest.raises(AlreadyExists):
        backend.update(ITEMS, Cond("id", "eq", deleted["id"]), {"deleted_at": None})
    backend.update(ITEMS, Cond("id", "eq", live["id"]), {"deleted_at": T0})
    backend.update(ITEMS, Cond("id", "eq", deleted["id"]), {"deleted_at": None})
    assert backend.count(ITEMS, Cond("deleted_at", "isnull", True)) == 1


def test_spi_partial_unique_constraint(store: Store) -> None:
    """A unique constraint with ``when`` holds only among rows matching it."""
    backend = _fresh(store, SLOTS)
    backend.insert(SLOTS, _slot("u1", 1, active=True))
    backend.insert(SLOTS, _slot("u1", 2))
    backend.insert(SLOTS, _slot("u1", 3))
    backend.insert(SLOTS, _slot("u2", 1, active=True))
    with pytest.raises(AlreadyExists):
        backend.insert(SLOTS, _slot("u1", 4, active=True))
    with pytest.raises(AlreadyExists):
        backend.update(
            SLOTS, And((Cond("owner", "eq", "u1"), Cond("slot", "eq", 2))), {"active": True}
        )
    with pytest.raises(AlreadyExists):
        backend.insert(SLOTS, _slot("u1", 2))
    assert backend.count(SLOTS, Cond("active", "eq", True)) == 2


def test_spi_insert_many_is_all_or_none(store: Store) -> None:
    """insert_many() stores every row, or none when one of them clashes."""
    backend = _fresh(store, ITEMS)
    backend.insert(ITEMS, _item(code="taken"))
    batch = [_item(code=f"new{i}") for i in range(5)] + [_item(code="taken")]
    with pytest.raises(AlreadyExists):
        backend.insert_many(ITEMS, batch)
    assert backend.count(ITEMS, TRUE) == 1
    within = [_item(code="twin"), _item(code="other"), _item(code="twin")]
    with pytest.raises(AlreadyExists):
        backend.insert_many(ITEMS, within)
    assert backend.count(ITEMS, TRUE) == 1
    good = [_item(code=f"ok{i}") for i in range(50)]
    backend.insert_many(ITEMS, good)
    assert _ids(backend.select(ITEMS, TRUE, (OrderBy("id"),))) == sorted(
        _ids(good) + _ids(backend.select(ITEMS, Cond("code", "eq", "taken")))
    )
    backend.insert_many(ITEMS, [])
    assert backend.count(ITEMS, TRUE) == 51


# ----------------------------------------------------------------------------- select / filters


def test_spi_select_where_order_limit_offset(store: Store) -> None:
    """select() filters, orders, skips offset rows and returns at most limit."""
    backend, rows = _loaded(store)
    order = (OrderBy("n"), OrderBy("id"))
    everything = sort_rows(list(rows), list(order))
    assert backend.select(ITEMS, TRUE, order) == everything
    assert backend.select(ITEMS, TRUE, order, limit=3) == everything[:3]
    assert backend.select(ITEMS, TRUE, order, limit=3, offset=2) == everything[2:5]
    assert backend.select(ITEMS, TRUE, order, offset=7) == everything[7:]
    assert backend.select(ITEMS, TRUE, order, limit=0) == []
    where = Cond("n", "eq", 3)
    assert backend.select(ITEMS, where, order) == [r for r in everything if r["n"] == 3]
    assert len(backend.select(ITEMS, TRUE)) == len(rows)


def test_spi_comparisons_follow_the_reference_meaning(store: Store) -> None:
    """eq/ne/lt/lte/gt/gte on every orderable kind match the reference; NULL never matches."""
    backend, rows = _loaded(store)
    probes = {
        "code": "c",
        "label": "apple",
        "n": 3,
        "score": 0.5,
        "amount": Decimal("10"),
        "flag": True,
        "at": T0,
        "id": rows[4]["id"],
    }
    for column, value in probes.items():
        for op in ("eq", "ne", "lt", "lte", "gt", "gte"):
            if column == "flag" and op not in ("eq", "ne"):
                continue
            _expect(backend, rows, Cond(column, op, value))


def test_spi_numbers_compare_as_numbers(store: Store) -> None:
    """Decimals and ints compare numerically, not as text (10 > 9.5, -7 < 0)."""
    backend, rows = _loaded(store)
    _expect(backend, rows, Cond("amount", "gt", Decimal("9.6")))
    _expect(backend, rows, Cond("amount", "lt", Decimal("0")))
    _expect(backend, rows, Cond("n", "lt", 0))
    _expect(backend, rows, Cond("n", "gt", 2**61))
    _expect(backend, rows, Cond("score", "lt", 1e-200))
    got = [r["code"] for r in backend.select(ITEMS, Cond("amount", "gte", Decimal("10")))]
    assert sorted(got) == ["a", "e", "h"]


def test_spi_membership_and_null_tests(store: Store) -> None:
    """in, not_in and isnull follow the reference meaning; not_in never matches NULL."""
    backend, rows = _loaded(store)
    for where in (
        Cond("n", "in", (3, 0, -7)),
        Cond("n", "not_in", (3, 0)),
        Cond("label", "in", ("apple", "", "nothing")),
        Cond("label", "not_in", ("apple",)),
        Cond("code", "in", ("a",)),
        Cond("at", "in", (T0,)),
        Cond("amount", "in", (Decimal("10"), Decimal("-0.000001"))),
        Cond("score", "isnull", True),
        Cond("score", "isnull", False),
        Cond("tags", "isnull", True),
        Cond("label", "isnull", True),
    ):
        _expect(backend, rows, where)


def test_spi_in_with_many_values(store: Store) -> None:
    """in with thousands of values works."""
    backend, rows = _loaded(store)
    wanted = (rows[0]["id"], rows[5]["id"], *(_new_id() for _ in range(5000)))
    assert sorted(_ids(backend.select(ITEMS, Cond("id", "in", wanted)))) == sorted(wanted[:2])


def test_spi_pattern_filters_are_literal(store: Store) -> None:
    """contains, startswith and endswith treat %, _ and \\ literally and match case."""
    backend, rows = _loaded(store)
    for where in (
        Cond("label", "contains", "%"),
        Cond("label", "contains", "_"),
        Cond("label", "contains", "\\"),
        Cond("label", "startswith", "a_"),
        Cond("label", "startswith", "a\\"),
        Cond("label", "endswith", "%"),
        Cond("label", "endswith", "% off"),
        Cond("label", "contains", "pp"),
        Cond("label", "contains", "A"),
        Cond("label", "startswith", "apple"),
        Cond("label", "startswith", "Apple"),
        Cond("label", "startswith", "ä"),
        Cond("label", "contains", "😀"),
        Cond("label", "contains", ""),
        Cond("label", "endswith", "E"),
    ):
        _expect(backend, rows, where)
    got = backend.select(ITEMS, Cond("label", "contains", "_"))
    assert [r["label"] for r in got] == ["a_b"]
    got = backend.select(ITEMS, Cond("label", "startswith", "a"))
    assert sorted(r["label"] for r in got) == ["a\\b", "a_b", "apple"]


def test_spi_list_contains_and_overlap(store: Store) -> None:
    """contains (every item) and overlap (any item) on lists match the reference meaning."""
    backend, rows = _loaded(store)
    for where in (
        Cond("tags", "contains", ("x",)),
        Cond("tags", "contains", ("x", "y")),
        Cond("tags", "contains", ("y", "x")),
        Cond("tags", "contains", ("x", "x")),
        Cond("tags", "contains", ("%",)),
        Cond("tags", "contains", ("Y",)),
        Cond("tags", "contains", ()),
        Cond("tags", "overlap", ("z", "w")),
        Cond("tags", "overlap", ("y",)),
        Cond("tags", "overlap", ("nope",)),
        Cond("tags", "overlap", ()),
    ):
        _expect(backend, rows, where)


def test_spi_boolean_expressions(store: Store) -> None:
    """And, Or, TRUE and FALSE combine conditions as the reference meaning says."""
    backend, rows = _loaded(store)
    for where in (
        TRUE,
        FALSE,
        And(()),
        Or(()),
        And((Cond("n", "eq", 3), Cond("flag", "eq", True))),
        Or((Cond("n", "eq", 3), Cond("label", "isnull", True))),
        Or((And((Cond("n", "gte", 0), Cond("score", "isnull", False))), Cond("code", "eq", "h"))),
        And((Or((Cond("flag", "eq", True), Cond("flag", "eq", False))), Cond("n", "ne", 3))),
        And((TRUE, Or((FALSE, Cond("code", "in", ("a", "b")))))),
    ):
        _expect(backend, rows, where)


# ----------------------------------------------------------------------------- ordering


def test_spi_text_orders_by_code_point(store: Store) -> None:
    """Text sorts by code point (like COLLATE "C"), ascending and descending."""
    backend = _fresh(store, ITEMS)
    labels = ["b", "B", "a", "A", "é", "e", "ä", "z", "Z", "ab", "a b", "", "😀", "Ω", "0", "~"]
    labels.append("ß")
    backend.insert_many(ITEMS, [_item(label=label) for label in labels])
    got = backend.select(ITEMS, TRUE, (OrderBy("label"), OrderBy("id")))
    assert [r["label"] for r in got] == sorted(labels)
    got = backend.select(ITEMS, TRUE, (OrderBy("label", desc=True), OrderBy("id")))
    assert [r["label"] for r in got] == sorted(labels, reverse=True)
    stored = backend.select(ITEMS, TRUE)
    for probe in ("z", "Z", "a", "é", "😀"):
        _expect(backend, stored, Cond("label", "gt", probe))
        _expect(backend, stored, Cond("label", "lt", probe))


def test_spi_nulls_last_ascending_first_descending(store: Store) -> None:
    """For every orderable kind, NULLs sort last ascending and first descending."""
    backend, rows = _loaded(store)
    for column in ("code", "label", "n", "score", "amount", "flag", "at"):
        for desc in (False, True):
            order = (OrderBy(column, desc), OrderBy("id"))
            got = backend.select(ITEMS, TRUE, order)
            assert _ids(got) == _ids(sort_rows(list(rows), list(order))), (column, desc)
            values = [r[column] for r in got]
            nulls = [v is None for v in values]
            if any(nulls):
                assert nulls == sorted(nulls, reverse=desc), (column, desc)


def test_spi_multi_column_ordering(store: Store) -> None:
    """Orderings over several columns in mixed directions match sort_rows."""
    backend, rows = _loaded(store)
    for order in (
        (OrderBy("n"), OrderBy("label", desc=True), OrderBy("id")),
        (OrderBy("flag", desc=True), OrderBy("amount"), OrderBy("id")),
        (OrderBy("at", desc=True), OrderBy("score"), OrderBy("id", desc=True)),
    ):
        got = backend.select(ITEMS, TRUE, order)
        assert _ids(got) == _ids(sort_rows(list(rows), list(order))), order


# ----------------------------------------------------------------------------- count / aggregate


def test_spi_count(store: Store) -> None:
    """count() counts matching rows."""
    backend, rows = _loaded(store)
    assert backend.count(ITEMS, TRUE) == len(rows)
    assert backend.count(ITEMS, FALSE) == 0
    assert backend.count(ITEMS, Cond("n", "eq", 3)) == 3
    assert backend.count(ITEMS, Cond("score", "isnull", True)) == 4


def test_spi_aggregate_without_groups(store: Store) -> None:
    """aggregate() without groups: one row; count(col) skips NULLs; sums exact; min/max ordered."""
    backend, rows = _loaded(store)
    (row,) = backend.aggregate(
        ITEMS,
        TRUE,
        (),
        {
            "rows": Aggregate("count"),
            "scored": Aggregate("count", "score"),
            "n_sum": Aggregate("sum", "n"),
            "amount_sum": Aggregate("sum", "amount"),
            "first": Aggregate("min", "at"),
            "last": Aggregate("max", "at"),
            "low": Aggregate("min", "label"),
            "high": Aggregate("max", "label"),
            "top": Aggregate("max", "amount"),
        },
    )
    assert row["rows"] == 9
    assert row["scored"] == 5
    assert row["n_sum"] == sum(r["n"] for r in rows if r["n"] is not None)
    assert row["amount_sum"] == Decimal("129.499999")
    assert str(row["amount_sum"]) == "129.499999"
    assert row["first"] == T0 - timedelta(days=1)
    assert row["last"] == T0 + timedelta(microseconds=1)
    assert row["low"] == ""
    assert row["high"] == "😀 emoji"
    assert row["top"] == Decimal("100")


def test_spi_aggregate_over_no_rows(store: Store) -> None:
    """Over no rows: count is 0 and sum/min/max are None."""
    backend, _ = _loaded(store)
    (row,) = backend.aggregate(
        ITEMS,
        FALSE,
        (),
        {
            "c": Aggregate("count"),
            "s": Aggregate("sum", "amount"),
            "lo": Aggregate("min", "n"),
            "hi": Aggregate("max", "at"),
        },
    )
    assert row == {"c": 0, "s": None, "lo": None, "hi": None}


def test_spi_aggregate_group_by(store: Store) -> None:
    """aggregate() with group_by: one row per group, ordered by group value, NULL group last."""
    backend, rows = _loaded(store)
    got = backend.aggregate(
        ITEMS,
        TRUE,
        ("flag",),
        {
            "c": Aggregate("count"),
            "total": Aggregate("sum", "amount"),
            "top": Aggregate("max", "n"),
        },
    )
    assert [g["flag"] for g in got] == [False, True, None]
    by_flag = {g["flag"]: g for g in got}
    for flag, group in by_flag.items():
        members = [r for r in rows if r["flag"] is flag]
        amounts = [r["amount"] for r in members if r["amount"] is not None]
        assert group["c"] == len(members), flag
        assert group["total"] == (sum(amounts, Decimal(0)) if amounts else None), flag
        numbers = [r["n"] for r in members if r["n"] is not None]
        assert group["top"] == max(numbers, default=None), flag
    assert set(got[0]) == {"flag", "c", "total", "top"}


# ----------------------------------------------------------------------------- writes


def test_spi_update_sets_values_and_increments(store: Store) -> None:
    """update() applies values and exact Increments, returning the changed rows in id order."""
    backend = _fresh(store, SLOTS)
    rows = [_slot("u1", i, hits=i, total=Decimal("0.100000")) for i in range(5)]
    backend.insert_many(SLOTS, rows)
    where = Cond("slot", "gte", 2)
    changed = backend.update(
        SLOTS, where, {"hits": Increment(10), "total": Increment(Decimal("0.000001")), "note": "x"}
    )
    assert _ids(changed) == sorted(_ids(rows[2:]))
    for row in changed:
        assert row["hits"] == row["slot"] + 10
        assert row["total"] == Decimal("0.100001")
        assert row["note"] == "x"
        assert backend.get(SLOTS, row["id"]) == row
    assert backend.get(SLOTS, rows[0]["id"]) == rows[0]
    backend.update(SLOTS, Cond("slot", "eq", 0), {"hits": Increment(-3)})
    assert _get(backend, SLOTS, rows[0]["id"])["hits"] == -3
    assert backend.update(SLOTS, Cond("owner", "eq", "nobody"), {"hits": 1}) == []


def test_spi_update_returns_values_of_their_kind(store: Store) -> None:
    """update() returns the changed rows' untouched values in their kind: 0.0 stays a float."""
    backend = _fresh(store, ITEMS)
    row = _item(score=0.0, n=1, data={"x": 1.0})
    backend.insert(ITEMS, row)
    (changed,) = backend.update(ITEMS, Cond("id", "eq", row["id"]), {"n": Increment(1)})
    assert type(changed["score"]) is float
    assert type(changed["data"]["x"]) is float
    assert changed == {**row, "n": 2} == backend.get(ITEMS, row["id"])


def test_spi_update_violating_unique_changes_nothing(store: Store) -> None:
    """An update breaking a unique constraint raises AlreadyExists and changes no row at all."""
    backend = _fresh(store, SLOTS)
    rows = [_slot("u1", i) for i in range(3)]
    backend.insert_many(SLOTS, rows)
    with pytest.raises(AlreadyExists):
        backend.update(SLOTS, TRUE, {"active": True, "hits": Increment(1)})
    assert backend.select(SLOTS, TRUE, (OrderBy("id"),)) == _by_id(rows)


def test_spi_delete_returns_how_many(store: Store) -> None:
    """delete() removes the matching rows for good and says how many."""
    backend, rows = _loaded(store)
    assert backend.delete(ITEMS, Cond("n", "eq", 3)) == 3
    assert backend.delete(ITEMS, Cond("n", "eq", 3)) == 0
    assert backend.count(ITEMS, TRUE) == len(rows) - 3
    assert backend.get(ITEMS, rows[0]["id"]) is None
    assert backend.delete(ITEMS, TRUE) == len(rows) - 3


def test_spi_upsert_inserts_then_applies_changes(store: Store) -> None:
    """upsert() inserts a new key, and for an existing key applies the changes to it."""
    backend = _fresh(store, SLOTS)
    key = ("owner", "slot")
    changes = {"hits": Increment(1), "total": Increment(Decimal("0.5")), "note": "again"}
    first = backend.upsert(SLOTS, key, _slot("u1", 1, hits=1, total=Decimal("0.5")), changes)
    assert (first["hits"], first["total"], first["note"]) == (1, Decimal("0.5"), None)
    second = backend.upsert(SLOTS, key, _slot("u1", 1, hits=1, total=Decimal("0.5")), changes)
    assert second["id"] == first["id"]
    assert (second["hits"], second["total"], second["note"]) == (2, Decimal("1.0"), "again")
    other = backend.upsert(SLOTS, key, _slot("u1", 2, hits=1), changes)
    assert other["id"] != first["id"]
    assert backend.count(SLOTS, TRUE) == 2
    assert backend.get(SLOTS, first["id"]) == second


# ----------------------------------------------------------------------------- transactions


def test_spi_transaction_rolls_back_on_error(store: Store) -> None:
    """Everything done inside a failed backend transaction is undone."""
    backend, _ = _loaded(store)
    before = backend.select(ITEMS, TRUE, (OrderBy("id"),))
    with aborted(backend.transaction()):
        backend.insert(ITEMS, _item(code="tx"))
        backend.update(ITEMS, TRUE, {"label": "changed"})
        backend.update(ITEMS, Cond("n", "isnull", False), {"n": Increment(1)})
        backend.delete(ITEMS, Cond("code", "eq", "a"))
    assert backend.select(ITEMS, TRUE, (OrderBy("id"),)) == before


def test_spi_nested_transaction_is_a_savepoint(store: Store) -> None:
    """A failed nested transaction undoes only its own work."""
    backend = _fresh(store, ITEMS)
    outer, inner = _item(code="outer"), _item(code="inner")
    with backend.transaction():
        backend.insert(ITEMS, outer)
        with aborted(backend.transaction()):
            backend.insert(ITEMS, inner)
        assert backend.get(ITEMS, inner["id"]) is None
    assert backend.select(ITEMS, TRUE) == [outer]


def test_spi_failed_statement_in_savepoint_keeps_transaction_usable(store: Store) -> None:
    """After a statement fails in a savepoint, the enclosing transaction goes on and commits."""
    backend = _fresh(store, ITEMS)
    first, clash, last = _item(code="x"), _item(code="x"), _item(code="y")
    with backend.transaction():
        backend.insert(ITEMS, first)
        with pytest.raises(AlreadyExists), backend.transaction():
            backend.insert(ITEMS, clash)
        backend.insert(ITEMS, last)
    assert _ids(backend.select(ITEMS, TRUE, (OrderBy("code"),))) == [first["id"], last["id"]]
