"""Contract: the caller's keys and history come in; upsert by id.

``create(id=...)`` and ``create_many([{"id": ...}])`` take any string of 1 to
128 characters without control characters (UUIDs, cuids, ULIDs, ``"1"``) on
every entity, compared and ordered code point for code point; a taken id
(deleted rows' included) is ``AlreadyExists`` naming ``id``. ``created_at``,
``updated_at`` and ``deleted_at`` of imported rows are accepted in their
order. ``upsert(id, **fields)`` creates or replaces one record atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any, Final

import pytest

from clonestore import AlreadyExists, NotFound, Store, ValidationError
from clonestore.testing.contract._builders import (
    ids,
    new_memory,
    new_session,
    new_user,
    race,
    raises,
    refused,
    unique_email,
)

#: Ids other systems hand out: a cuid, a ULID, a number, an upper-case UUID, a
#: slug, non-ASCII text, the longest allowed.
CALLER_IDS: Final = (
    "ckq8z1x2y0000qwerty12345",
    "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "1",
    "6F9619FF-8B86-D011-B42D-00C04FC964FF",
    "user/ada lovelace",
    "ключ-é-🔑",
    "x" * 128,
)

#: Values that are not ids: empty, too long, control characters, a lone surrogate,
#: not strings.
BAD_IDS: Final[tuple[Any, ...]] = (
    "", "x" * 129, "a\nb", "tab\t", "nul\x00", "del\x7f", "c1\x85", "\ud800", 42,
)  # fmt: skip

T0: Final = datetime(2021, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def _all_entities(store: Store, key: str) -> dict[str, Callable[[], Any]]:
    """A create with id ``key`` on every entity (the owner created first)."""
    user = store.users.create(id=key, email=unique_email(), name="Ada")
    session = new_session(store, user, id=key)
    return {
        "users": lambda: user,
        "voice_models": lambda: store.voice_models.create(
            id=key, user_id=user.id, name="v", provider="p"
        ),
        "face_models": lambda: store.face_models.create(
            id=key, user_id=user.id, name="f", provider="p"
        ),
        "sessions": lambda: session,
        "turns": lambda: store.sessions.add_turn(session.id, id=key, user_transcript="hi"),
        "documents": lambda: store.documents.create(id=key, user_id=user.id, filename="a.txt"),
        "memories": lambda: store.memories.add(user.id, "likes tea", [1.0, 0.0], id=key),
    }


def test_create_takes_the_callers_id_on_every_entity(store: Store) -> None:
    """create(id=...) keeps foreign ids (cuids, ULIDs, "1") on every entity."""
    for key in CALLER_IDS:
        for table, create in _all_entities(store, key).items():
            record = create()
            repo = getattr(store, table)
            assert record.id == key, (table, key)
            assert repo.get(key) == record, (table, key)
            assert repo.find_many(where={"id": key}) == [record], (table, key)
            assert repo.find_many(where={"id__in": [key, "nobody"]}) == [record], (table, key)
            if table != "users":
                assert record.user_id == key
                assert repo.find_many(where={"user_id": key}) == [record], (table, key)


def test_create_many_takes_ids_for_some_rows_and_generates_the_others(store: Store) -> None:
    """create_many keeps the ids given and generates the missing ones, all distinct."""
    made = store.users.create_many(
        [
            {"id": "imported-1", "email": unique_email(), "name": "A"},
            {"email": unique_email(), "name": "B"},
            {"id": "imported-2", "email": unique_email(), "name": "C"},
        ]
    )
    assert [made[0].id, made[2].id] == ["imported-1", "imported-2"]
    assert made[1].id not in ("imported-1", "imported-2")
    assert [store.users.get(r.id) for r in made] == made


def test_ids_that_are_not_short_printable_strings_are_refused(store: Store) -> None:
    """Empty, overlong, control-character or non-string ids are refused, naming id."""
    for bad in BAD_IDS:
        row: dict[str, Any] = {"id": bad, "email": unique_email(), "name": "A"}
        error = refused(store, partial(store.users.create, **row), what=repr(bad))
        assert error.field == "id", (bad, error.field)
        refused(store, partial(store.users.create_many, [row]), what=f"create_many {bad!r}")
        raises(ValidationError, partial(store.users.get, bad), f"get {bad!r}")


def test_a_taken_id_is_already_exists_naming_id(store: Store) -> None:
    """A taken id (a deleted row's too) is AlreadyExists naming id, nothing written."""
    user = new_user(store, id="ada")
    user_row = store.users.get("ada")
    error = refused(store, lambda: new_user(store, id="ada"), AlreadyExists, what="create")
    assert "id" in str(error), str(error)
    assert "email" not in str(error), str(error)
    refused(
        store,
        lambda: store.users.create_many(
            [{"id": "fresh", "email": unique_email(), "name": "A"},
             {"id": "ada", "email": unique_email(), "name": "B"}]
        ),
        AlreadyExists,
        what="create_many",
    )
    refused(
        store,
        lambda: store.users.create_many(
            [{"id": "twice", "email": unique_email(), "name": "A"},
             {"id": "twice", "email": unique_email(), "name": "B"}]
        ),
        AlreadyExists,
        what="create_many repeating an id",
    )
    new_memory(store, user, id="m")
    store.memories.delete("m")
    refused(store, lambda: new_memory(store, user, id="m"), AlreadyExists, what="deleted row")
    assert new_session(store, user, id="ada").id == "ada"  # another table
    assert store.users.get("ada") == user_row


def test_ids_are_exact_and_order_by_code_point(store: Store) -> None:
    """Ids are exact (case, spaces) and pages by id follow code point order."""
    keys = ["b", "B", "b ", "a", "10", "2", "1", "é", "z", "Z", "ß", "\u00e9\u0301", "~", "日本"]
    for key in keys:
        new_user(store, id=key)
    assert {store.users.get(k).id for k in keys} == set(keys)
    seen: list[str] = []
    cursor = None
    while True:
        page = store.users.page(order_by="id", size=3, cursor=cursor)
        seen += ids(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(keys), seen
    assert ids(store.users.find_many(order_by="-id")) == sorted(keys, reverse=True)
    assert ids(store.users.find_many(where={"id__gt": "Z"}, order_by="id")) == sorted(
        k for k in keys if k > "Z"
    )


def test_uuid_objects_become_their_canonical_strings(store: Store) -> None:
    """A uuid.UUID id is stored as its lower-case string, and found by either."""
    import uuid

    key = uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")
    user = new_user(store, id=key)
    assert user.id == str(key)
    assert store.users.get(key) == store.users.get(str(key)) == user  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- history


def test_create_takes_the_times_of_an_imported_row(store: Store) -> None:
    """Given created_at/updated_at are stored in UTC; updated_at defaults to created_at."""
    later = T0 + timedelta(days=3, microseconds=1)
    east = timezone(timedelta(hours=5, minutes=30))
    new = new_user(store)
    both = new_user(store, created_at=T0.astimezone(east), updated_at=later)
    only_created = new_user(store, created_at=T0 + timedelta(seconds=1))
    assert (both.created_at, both.updated_at) == (T0, later)
    assert both.created_at.tzinfo == UTC
    assert both.version == 1
    assert only_created.updated_at == only_created.created_at == T0 + timedelta(seconds=1)
    assert store.users.get(both.id) == both
    assert ids(store.users.find_many(order_by="created_at")) == ids([both, only_created, new])
    assert store.users.find_many(where={"updated_at__gte": later, "id__ne": new.id}) == [both]
    made = store.memories.create_many(
        [{"user_id": new.id, "content": "old", "embedding": [1.0], "created_at": T0}]
    )
    assert store.memories.get(made[0].id).created_at == T0


def test_imported_times_out_of_order_or_naive_are_refused(store: Store) -> None:
    """Times out of order or naive are a ValidationError naming the field."""
    before = T0 - timedelta(microseconds=1)
    cases: dict[str, Callable[[], object]] = {
        "updated_at": lambda: new_user(store, created_at=T0, updated_at=before),
        "deleted_at": lambda: new_user(store, created_at=T0, deleted_at=before),
        "created_at": lambda: new_user(store, created_at=T0.replace(tzinfo=None)),
    }
    for field, action in cases.items():
        assert refused(store, action, what=field).field == field
    error = refused(
        store,
        lambda: store.users.create_many(
            [{"email": unique_email(), "name": "A"},
             {"email": unique_email(), "name": "B", "created_at": T0, "updated_at": before}]
        ),
        what="create_many",
    )
    assert error.field == "updated_at"


def test_an_imported_deleted_row_is_hidden_and_can_be_restored(store: Store) -> None:
    """A row created with deleted_at is hidden, frees its unique values, restores."""
    email = unique_email()
    gone = new_user(store, email=email, created_at=T0, deleted_at=T0 + timedelta(days=1))
    assert gone.deleted_at == T0 + timedelta(days=1)
    assert store.users.get_or_none(gone.id) is None
    assert store.users.find_many(where={"id": gone.id}, with_deleted=True) == [gone]
    raises(AlreadyExists, lambda: (new_user(store, email=email), store.users.restore(gone.id)))
    other = store.users.find_by_email(email)
    assert other is not None
    store.users.hard_delete(other.id)
    restored = store.users.restore(gone.id)
    assert restored.deleted_at is None
    assert restored.created_at == T0


# ----------------------------------------------------------------------------- upsert


def test_upsert_creates_then_replaces(store: Store) -> None:
    """upsert creates, then replaces: defaults back, created_at kept, version up."""
    first, created = store.users.upsert(
        "u-1", email=unique_email(), name="Ada", settings={"a": 1}, personality_traits=["x"]
    )
    assert created
    assert first.id == "u-1"
    assert first.version == 1
    assert store.users.get("u-1") == first
    email = unique_email()
    second, created = store.users.upsert("u-1", email=email, name="Grace")
    assert not created
    assert (second.id, second.email, second.name) == ("u-1", email, "Grace")
    assert (second.settings, second.personality_traits) == ({}, ())
    assert second.created_at == first.created_at
    assert second.version == 2
    assert second.updated_at >= first.updated_at
    assert store.users.get("u-1") == second
    assert store.users.find_by_email(email) == second
    assert store.users.count(where={"id": "u-1"}) == 1


def test_upsert_keeps_what_domain_operations_set(store: Store) -> None:
    """A replaced record keeps is_active and takes created_at/updated_at given."""
    user = new_user(store)
    _model, _ = store.voice_models.upsert("v", user_id=user.id, name="one", provider="p")
    store.voice_models.activate("v")
    replaced, created = store.voice_models.upsert(
        "v", user_id=user.id, name="two", provider="q", created_at=T0, updated_at=T0
    )
    assert not created
    assert replaced.is_active
    assert replaced.name == "two"
    assert (replaced.created_at, replaced.updated_at) == (T0, T0)
    assert store.voice_models.active_for(user.id) == replaced


def test_upsert_brings_a_soft_deleted_record_back_replaced(store: Store) -> None:
    """upsert of a soft-deleted record's id replaces it and makes it live again."""
    user = new_user(store)
    new_memory(store, user, id="m", content="old")
    store.memories.delete("m")
    memory, created = store.memories.upsert("m", user_id=user.id, content="new", embedding=[0.5])
    assert not created
    assert memory.deleted_at is None
    assert memory.content == "new"
    assert store.memories.get("m") == memory
    assert [m.memory.id for m in store.memories.similar(user.id, [1.0])] == ["m"]


def test_upsert_clashing_with_a_unique_value_changes_nothing(store: Store) -> None:
    """An upsert clashing with a live unique value is AlreadyExists, no change."""
    taken = new_user(store).email
    new_user(store, id="u")
    error = refused(
        store, lambda: store.users.upsert("u", email=taken, name="A"), AlreadyExists, "replace"
    )
    assert "email" in str(error)
    refused(store, lambda: store.users.upsert("v", email=taken, name="A"), AlreadyExists, "create")


def test_upsert_never_touches_another_users_record(store: Store) -> None:
    """An upsert of another user's id is AlreadyExists and changes nothing."""
    owner, other = new_user(store), new_user(store)
    new_memory(store, owner, id="mine", content="secret")
    view = store.for_user(other.id)
    refused(
        store,
        lambda: view.memories.upsert("mine", content="stolen", embedding=[1.0]),
        AlreadyExists,
        "view",
    )
    refused(
        store,
        lambda: store.memories.upsert("mine", user_id=other.id, content="x", embedding=[1.0]),
        AlreadyExists,
        "other owner",
    )
    assert store.memories.get("mine").content == "secret"


def test_upsert_refuses_bad_input_before_writing(store: Store) -> None:
    """Bad ids, fields or owners (and turns) are refused by upsert before writing."""
    user = new_user(store)
    session = new_session(store, user)
    cases: dict[str, tuple[type[Exception], Callable[[], object]]] = {
        "bad id": (ValidationError, lambda: store.users.upsert("", email=unique_email(), name="A")),
        "id twice": (
            ValidationError,
            lambda: store.users.upsert("a", id="b", email=unique_email(), name="A"),
        ),
        "invalid": (ValidationError, lambda: store.users.upsert("a", email="nope", name="A")),
        "missing": (ValidationError, lambda: store.users.upsert("a", name="A")),
        "version": (
            ValidationError,
            lambda: store.users.upsert("a", email=unique_email(), name="A", version=3),
        ),
        "no owner": (
            NotFound,
            lambda: store.memories.upsert("m", user_id="nobody", content="x", embedding=[1.0]),
        ),
        "turn": (
            ValidationError,
            lambda: store.turns.upsert("t", session_id=session.id),
        ),
    }
    for what, (error, action) in cases.items():
        refused(store, action, error, what)
    assert store.users.get(user.id) == user


def test_upserts_of_one_new_id_racing_create_it_once(store_factory: Any) -> None:
    """Upserts of one new id racing from threads all succeed, creating it once."""
    store = store_factory()
    user = new_user(store)
    outcomes: list[bool] = []

    def work(i: int) -> None:
        _, created = store.memories.upsert(
            "raced", user_id=user.id, content=f"writer {i}", embedding=[float(i + 1)]
        )
        outcomes.append(created)

    errors = race(8, work)
    assert not errors, errors
    assert sorted(outcomes) == [False] * 7 + [True]
    assert store.memories.count(where={"id": "raced"}) == 1
    assert store.memories.get("raced").version == 8


@pytest.mark.parametrize("table", ["users", "memories"])
def test_upsert_rolls_back_with_its_transaction(store: Store, table: str) -> None:
    """An upsert inside a transaction that rolls back leaves nothing behind."""
    user = new_user(store)

    class Boom(Exception):
        pass

    def upsert() -> None:
        if table == "users":
            store.users.upsert("rolled", email=unique_email(), name="A")
        else:
            store.memories.upsert("rolled", user_id=user.id, content="x", embedding=[1.0])

    def rolled_back() -> None:
        with store.transaction():
            upsert()
            raise Boom

    refused(store, rolled_back, Boom, "rolled back")
    assert getattr(store, table).get_or_none("rolled") is None


# ----------------------------------------------------------------------------- as the original


def test_what_the_original_leaves_optional_may_be_left_out(store: Store) -> None:
    """Names and memory embeddings may be None; importance defaults to 0."""
    user = store.users.create(email=unique_email())
    voice = store.voice_models.create(user_id=user.id, provider="acme")
    face = store.face_models.create(user_id=user.id, provider="acme")
    memory = store.memories.create(user_id=user.id, content="no vector yet")
    assert (user.name, voice.name, face.name, memory.embedding) == (None, None, None, None)
    assert memory.importance == 0.0
    assert store.users.get(user.id) == user
    assert store.voice_models.get(voice.id) == voice
    assert store.face_models.get(face.id) == face
    assert store.memories.get(memory.id) == memory
    assert store.users.update(user.id, name="Ada").name == "Ada"
    assert store.users.update(user.id, name=None).name is None
    assert store.users.find_many(where={"name__isnull": True}) == [store.users.get(user.id)]

