"""Contract: the value rules every backend shares (DESIGN section 6).

Invalid input raises ValidationError before anything is written, on create,
create_many, update and domain operations alike; valid corner values round-trip
exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import partial
from typing import Any

from clonestore import Store
from clonestore.testing.contract._builders import (
    new_document,
    new_memory,
    new_session,
    new_user,
    new_voice_model,
    refused,
    typed,
)

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# ----------------------------------------------------------------------------- text


def test_text_with_nul_is_refused(store: Store) -> None:
    """NUL characters are refused in text, list items, JSON strings and JSON keys."""
    user = new_user(store)
    session = new_session(store, user)
    cases: dict[str, Callable[[], object]] = {
        "create name": lambda: new_user(store, name="a\x00b"),
        "update name": lambda: store.users.update(user.id, name="\x00"),
        "list item": lambda: store.users.update(user.id, personality_traits=["ok", "a\x00"]),
        "json string": lambda: store.users.update(user.id, settings={"k": "v\x00"}),
        "json key": lambda: store.users.update(user.id, settings={"k\x00": 1}),
        "document text": lambda: new_document(store, user, text_content="x\x00y"),
        "turn text": lambda: store.sessions.add_turn(session.id, user_transcript="\x00"),
    }
    for what, action in cases.items():
        refused(store, action, what=what)


def test_text_with_lone_surrogates_is_refused(store: Store) -> None:
    """Lone surrogates (unencodable in UTF-8) are refused in text, lists and JSON."""
    user = new_user(store)
    for surrogate in ("\ud800", "\udfff", "a\udc80b"):
        cases: dict[str, Callable[[], object]] = {
            "create name": partial(new_user, store, name=surrogate),
            "update name": partial(store.users.update, user.id, name=surrogate),
            "list item": partial(store.users.update, user.id, personality_traits=[surrogate]),
            "json value": partial(store.users.update, user.id, settings={"k": surrogate}),
            "json key": partial(store.users.update, user.id, settings={surrogate: 1}),
        }
        for what, action in cases.items():
            refused(store, action, what=f"{what} {surrogate!r}")


def test_any_other_unicode_text_round_trips(store: Store) -> None:
    """Text without NUL or lone surrogates is stored and read back unchanged."""
    names = [
        "é",
        "e\u0301",
        "😀",
        "\U0001f9d1\u200d\U0001f52c",
        "שלום",
        "\uffff",
        "\U0010ffff",
        "tab\tnew\nline\r",
        " ",
        "'; DROP TABLE users; --",
        "%_\\",
        "ǅ İ \u0131 ς ﬁ",  # dotless i, spelled out so no reader mistakes it for i
    ]
    for name in names:
        user = new_user(store, name=name, personality_traits=[name, ""], settings={name: name})
        assert store.users.get(user.id) == user, repr(name)
        assert store.users.get(user.id).name == name


def test_over_long_text_is_refused(store: Store) -> None:
    """Text longer than its field's limit (in characters) is refused; the limit is allowed."""
    user = new_user(store)
    assert new_user(store, name="😀" * 200).name == "😀" * 200
    cases: dict[str, Callable[[], object]] = {
        "name 201": lambda: new_user(store, name="x" * 201),
        "update name 201": lambda: store.users.update(user.id, name="é" * 201),
        "email 255": lambda: new_user(store, email="a" * 243 + "@example.com"),
        "filename 256": lambda: new_document(store, user, filename="f" * 256),
        "provider 101": lambda: new_voice_model(store, user, provider="p" * 101),
        "list item over 10000": lambda: store.users.update(
            user.id, personality_traits=["x" * 10_001]
        ),
        "json string over 1000000": lambda: store.users.update(
            user.id, settings={"s": "x" * 1_000_001}
        ),
    }
    for what, action in cases.items():
        refused(store, action, what=what)


def test_longest_allowed_text_round_trips(store: Store) -> None:
    """A transcript of the maximum length (10^6 characters, astral ones too) round-trips."""
    session = new_session(store, new_user(store))
    transcript = ("ab😀ç" * 250_000)[:1_000_000]
    turn = store.sessions.add_turn(session.id, user_transcript=transcript)
    assert store.turns.get(turn.id).user_transcript == transcript
    refused(store, partial(store.sessions.add_turn, session.id, user_transcript=transcript + "x"))


def test_empty_required_text_is_refused(store: Store) -> None:
    """Text fields with a minimum length refuse the empty string."""
    user = new_user(store)
    cases: dict[str, Callable[[], object]] = {
        "name": lambda: new_user(store, name=""),
        "update name": lambda: store.users.update(user.id, name=""),
        "provider": lambda: new_voice_model(store, user, provider=""),
        "filename": lambda: new_document(store, user, filename=""),
        "memory content": lambda: new_memory(store, user, content=""),
    }
    for what, action in cases.items():
        refused(store, action, what=what)


# ----------------------------------------------------------------------------- emails


def test_bad_emails_are_refused(store: Store) -> None:
    """Addresses without one @, a dotted domain, or with spaces are refused."""
    user = new_user(store)
    bad = [
        "",
        "plain",
        "@example.com",
        "ada@",
        "ada@example",
        "ada@@example.com",
        "a da@example.com",
        "ada@exa mple.com",
        "ada@example.",
        "ada@example.com\n",
    ]
    for email in bad:
        refused(store, partial(new_user, store, email=email), what=f"create {email!r}")
        refused(
            store,
            partial(store.users.update, user.id, email=email),
            what=f"update {email!r}",
        )


def test_good_emails_are_kept_as_given(store: Store) -> None:
    """Valid addresses, non-ASCII ones included, are stored exactly as given."""
    for email in ("Ada.Lovelace+clones@Example.CO.uk", "straße@bücher.de", "x@y.io"):
        assert store.users.get(new_user(store, email=email).id).email == email


# ----------------------------------------------------------------------------- numbers


def test_non_finite_floats_are_refused(store: Store) -> None:
    """NaN and ±Infinity are refused in float fields, vectors and JSON."""
    user = new_user(store)
    model = new_voice_model(store, user)
    for bad in (math.nan, math.inf, -math.inf):
        cases: dict[str, Callable[[], object]] = {
            "quality_score": partial(new_voice_model, store, user, quality_score=bad),
            "update quality_score": partial(store.voice_models.update, model.id, quality_score=bad),
            "importance": partial(new_memory, store, user, importance=bad),
            "embedding": partial(new_memory, store, user, embedding=[1.0, bad]),
            "json": partial(store.users.update, user.id, settings={"x": [1, bad]}),
        }
        for what, action in cases.items():
            refused(store, action, what=f"{what} {bad}")


def test_integers_outside_signed_64_bits_are_refused(store: Store) -> None:
    """Integers beyond signed 64 bits are refused in int fields and in JSON."""
    user = new_user(store)
    session = new_session(store, user)
    cases: dict[str, Callable[[], object]] = {
        "size_bytes 2**63": lambda: new_document(store, user, size_bytes=2**63),
        "size_bytes 10**30": lambda: new_document(store, user, size_bytes=10**30),
        "json 2**63": lambda: store.users.update(user.id, settings={"n": 2**63}),
        "json -2**63-1": lambda: store.users.update(user.id, settings={"n": [INT64_MIN - 1]}),
        "turn latency 2**64": lambda: store.sessions.add_turn(session.id, asr_latency_ms=2**64),
        "quality_score 2**70": lambda: new_voice_model(store, user, quality_score=2**70),
    }
    for what, action in cases.items():
        refused(store, action, what=what)


def test_signed_64_bit_extremes_round_trip(store: Store) -> None:
    """The largest int64 is stored exactly in int fields; both extremes in JSON."""
    user = new_user(store, settings={"max": INT64_MAX, "min": INT64_MIN})
    assert typed(store.users.get(user.id).settings) == typed({"max": INT64_MAX, "min": INT64_MIN})
    document = new_document(store, user, size_bytes=INT64_MAX)
    assert store.documents.get(document.id).size_bytes == INT64_MAX


def test_bool_is_not_a_number(store: Store) -> None:
    """True/False are refused where an integer or a float is expected."""
    user = new_user(store)
    session = new_session(store, user)
    cases: dict[str, Callable[[], object]] = {
        "size_bytes": lambda: new_document(store, user, size_bytes=True),
        "asr_latency_ms": lambda: store.sessions.add_turn(session.id, asr_latency_ms=False),
        "quality_score": lambda: new_voice_model(store, user, quality_score=True),
        "importance": lambda: new_memory(store, user, importance=False),
        "embedding item": lambda: new_memory(store, user, embedding=[True, 0.0]),
        "asr_cost": lambda: store.sessions.add_turn(session.id, asr_cost=True),
        "expected_version": lambda: store.users.update(user.id, expected_version=True, name="X"),
    }
    for what, action in cases.items():
        refused(store, action, what=what)


def test_unit_interval_scores(store: Store) -> None:
    """quality_score and importance must lie in [0, 1]; both ends are allowed."""
    user = new_user(store)
    for bad in (-0.0001, 1.0001, -1, 2, 1e300):
        refused(store, partial(new_voice_model, store, user, quality_score=bad), what=str(bad))
        refused(store, partial(new_memory, store, user, importance=bad), what=str(bad))
    for good in (0, 0.0, 0.5, 1, 1.0):
        model = new_voice_model(store, user, quality_score=good)
        stored = store.voice_models.get(model.id).quality_score
        assert typed(stored) == typed(float(good))


def test_ints_are_widened_to_floats(store: Store) -> None:
    """An int given for a float or vector field is stored as a float."""
    user = new_user(store)
    memory = new_memory(store, user, embedding=[1, -2, 0], importance=1)
    stored = store.memories.get(memory.id)
    assert typed(list(stored.embedding or ())) == typed([1.0, -2.0, 0.0])
    assert typed(stored.importance) == typed(1.0)


def test_floats_round_trip_exactly(store: Store) -> None:
    """Floats in float fields read back bit for bit (vectors: see the float32 tests)."""
    user = new_user(store)
    for value in (0.1, 1 / 3, 1e-7, 0.999999999999):
        model = new_voice_model(store, user, quality_score=value)
        assert store.voice_models.get(model.id).quality_score == value


# ----------------------------------------------------------------------------- decimals


def test_decimals_with_more_than_six_places_are_refused(store: Store) -> None:
    """Money refuses more than 6 decimal places, floats, non-finite and huge values."""
    user = new_user(store)
    session = new_session(store, user)
    bad = [
        Decimal("0.0000001"),
        Decimal("1.1234567"),
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("-1"),
        Decimal("1E+12"),
        0.1,
        "0.1",
    ]
    for value in bad:
        refused(
            store,
            partial(store.sessions.add_turn, session.id, llm_cost=value),
            what=repr(value),
        )


def test_decimals_are_stored_exactly(store: Store) -> None:
    """Costs with up to 6 places are stored exactly, and sums are exact to the last digit."""
    user = new_user(store)
    session = new_session(store, user)
    costs = [Decimal("0.000001"), Decimal("0.1"), Decimal("0.2"), Decimal("123456.654321")]
    for cost in costs:
        turn = store.sessions.add_turn(session.id, tts_cost=cost)
        assert store.turns.get(turn.id).tts_cost == cost
    assert store.sessions.get(session.id).total_cost == sum(costs, Decimal(0))
    assert str(store.sessions.get(session.id).total_cost) == "123456.954322"


# ----------------------------------------------------------------------------- datetimes


def test_naive_datetimes_are_refused(store: Store) -> None:
    """Datetimes without a timezone are refused, in fields and in filters."""
    user = new_user(store)
    naive = datetime(2024, 1, 1, 12, 0)
    cases: dict[str, Callable[[], object]] = {
        "uploaded_at": lambda: new_document(store, user, uploaded_at=naive),
        "started_at": lambda: new_session(store, user, started_at=naive),
        "filter": lambda: store.users.find_many(where={"created_at__gte": naive}),
        "not a datetime": lambda: new_document(store, user, uploaded_at="2024-01-01T00:00:00Z"),
        "a date": lambda: new_document(store, user, uploaded_at=naive.date()),
    }
    for what, action in cases.items():
        refused(store, action, what=what)


def test_non_utc_datetimes_are_normalised_to_utc(store: Store) -> None:
    """An aware non-UTC datetime is stored as the same instant in UTC, microseconds kept."""
    user = new_user(store)
    offset = timezone(timedelta(hours=-7, minutes=-30))
    local = datetime(2024, 3, 10, 23, 45, 1, 123456, tzinfo=offset)
    document = new_document(store, user, uploaded_at=local)
    stored = store.documents.get(document.id).uploaded_at
    assert stored == local
    assert stored.utcoffset() == timedelta(0)
    assert stored.replace(tzinfo=None) == datetime(2024, 3, 11, 7, 15, 1, 123456)
    assert document.uploaded_at == stored


def test_datetime_extremes_round_trip(store: Store) -> None:
    """Datetimes from year 1 to year 9999 round-trip to the microsecond."""
    user = new_user(store)
    for value in (
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ):
        document = new_document(store, user, uploaded_at=value)
        assert store.documents.get(document.id).uploaded_at == value


# ----------------------------------------------------------------------------- enums


def test_unknown_enum_values_are_refused(store: Store) -> None:
    """Tiers, model statuses and memory types outside their sets are refused (case matters)."""
    user = new_user(store)
    model = new_voice_model(store, user)
    session = new_session(store, user)
    document = new_document(store, user)
    cases: dict[str, Callable[[], object]] = {
        "tier gold": lambda: new_user(store, subscription_tier="gold"),
        "tier FREE": lambda: new_user(store, subscription_tier="FREE"),
        "update tier": lambda: store.users.update(user.id, subscription_tier="platinum"),
        "model status": lambda: new_voice_model(store, user, status="done"),
        "update model status": lambda: store.voice_models.update(model.id, status=""),
        "memory type": lambda: new_memory(store, user, memory_type="dream"),
        "session state": lambda: store.sessions.update_state(session.id, "x"),
        "document status": lambda: store.documents.update_status(document.id, "archived"),
    }
    for what, action in cases.items():
        refused(store, action, what=what)


# ----------------------------------------------------------------------------- JSON


def test_json_refuses_non_finite_bad_keys_and_deep_nesting(store: Store) -> None:
    """JSON refuses NaN/Infinity, non-string keys, nesting beyond 32 levels and non-JSON types."""
    user = new_user(store)
    bad: dict[str, Any] = {
        "nan": {"x": math.nan},
        "inf in list": {"x": [0, math.inf]},
        "int key": {1: "a"},
        "None key": {None: "a"},
        "tuple key": {("a",): 1},
        "nested int key": {"a": {2: "b"}},
        "too deep": {"x": _nest(32)},
        "set": {"x": {1, 2}},
        "bytes": {"x": b"raw"},
        "decimal": {"x": Decimal("1.5")},
        "datetime": {"x": datetime(2024, 1, 1, tzinfo=UTC)},
        "object": {"x": object()},
    }
    for what, settings in bad.items():
        refused(store, partial(new_user, store, settings=settings), what=f"create {what}")
        refused(
            store,
            partial(store.users.update, user.id, settings=settings),
            what=f"update {what}",
        )


def test_json_round_trips_types_exactly(store: Store) -> None:
    """JSON values read back with their types: 1 stays int, 1.0 stays float, keys kept."""
    settings = {
        "int": 1,
        "float": 1.0,
        "zero": 0,
        "zero_float": 0.0,
        "neg": -0.5,
        "big_float": 1e20,
        "huge_float": 1.5e300,
        "tiny_float": 1e-7,
        "third": 1 / 3,
        "max": INT64_MAX,
        "true": True,
        "false": False,
        "null": None,
        "text": 'é😀 "quoted" \\ back',
        "empty_list": [],
        "empty_object": {},
        "nested": {"a": [1, 2.0, "3", None, {"b": False, "c": [[]]}]},
        "": "empty key",
        "ключ": "unicode key",
        "deep": _nest(31),
    }
    user = new_user(store, settings=settings)
    assert typed(store.users.get(user.id).settings) == typed(settings)
    meta = [1, 1.0, "x", None, True]
    session = new_session(store, user, metadata={"list": meta})
    assert typed(store.sessions.get(session.id).metadata) == typed({"list": meta})


# ----------------------------------------------------------------------------- lists and vectors


def test_lists_keep_order_and_duplicates(store: Store) -> None:
    """List fields keep their items' order, duplicates and awkward characters."""
    traits = ["b", "a", "b", "", "a,b", '"q"', "{x}", "NULL", "null", "\\", "é😀", " ", "[]"]
    user = new_user(store, personality_traits=traits)
    assert store.users.get(user.id).personality_traits == tuple(traits)
    document = new_document(store, user, tags=["z", "a", "z"])
    assert store.documents.get(document.id).tags == ("z", "a", "z")


def test_over_long_lists_are_refused(store: Store) -> None:
    """Lists and vectors beyond their item limits, or empty where required, are refused."""
    user = new_user(store)
    assert len(new_user(store, personality_traits=["t"] * 100).personality_traits) == 100
    cases: dict[str, Callable[[], object]] = {
        "traits 101": lambda: new_user(store, personality_traits=["t"] * 101),
        "update traits 101": lambda: store.users.update(user.id, personality_traits=["t"] * 101),
        "tags 101": lambda: new_document(store, user, tags=["t"] * 101),
        "embedding 16385": lambda: new_memory(store, user, embedding=[0.5] * 16_385),
        "empty embedding": lambda: new_memory(store, user, embedding=[]),
    }
    for what, action in cases.items():
        refused(store, action, what=what)


def test_missing_required_fields_are_refused(store: Store) -> None:
    """Creating without a required field raises ValidationError naming it."""
    user = new_user(store)
    cases: dict[str, Callable[[], object]] = {
        "email": lambda: store.users.create(name="No email"),  # type: ignore[call-arg]
        "user_id": lambda: store.voice_models.create(name="v", provider="p"),  # type: ignore[call-arg]
        "provider": lambda: store.voice_models.create(user_id=user.id, name="v"),  # type: ignore[call-arg]
        "filename": lambda: store.documents.create(user_id=user.id),  # type: ignore[call-arg]
        "content": lambda: store.memories.create(user_id=user.id),  # type: ignore[call-arg]
        "session_id": lambda: store.turns.create(user_transcript="hi"),  # type: ignore[call-arg]
    }
    for field, action in cases.items():
        error = refused(store, action, what=field)
        assert error.field == field
