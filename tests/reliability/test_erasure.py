"""Export and erasure with every feature plugin: export_user holds everything about the user,
erase_user leaves nothing of them in any table, redacts audit rows and keeps the chain valid."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import clonestore
from clonestore.query import TRUE
from clonestore.testing import StoreFactory
from tests.plugins.conftest import _empty_audit_log, is_postgres

PLUGINS = ["cache", "ratelimit", "audit"]


def _populate(store: clonestore.Store, email: str, name: str) -> clonestore.User:
    with store.context(ip_address="203.0.113.9", user_agent="app/1.2", request_id="r-1"):
        user = store.users.create(email=email, name=name, personality_traits=[name])
    with store.context(actor_id=user.id, ip_address="203.0.113.9", user_agent="app/1.2"):
        voice = store.voice_models.create(user_id=user.id, name=f"{name} voice", provider="p")
        store.voice_models.activate(voice.id)
        store.face_models.create(user_id=user.id, name="face", provider="p")
        session = store.sessions.create(user_id=user.id, voice_model_id=voice.id)
        store.sessions.add_turn(session.id, llm_latency_ms=5, user_transcript=f"I am {name}")
        doc = store.documents.create(user_id=user.id, filename=f"{name}.txt", tags=["cv"])
        store.documents.delete(doc.id)
        store.memories.add(user.id, f"{name} likes tea", [1.0, 0.0])
        store.users.update(user.id, name=f"{name} L")
    store.cache.set_embedding(f"q-{user.id}", [0.5], user_id=user.id)
    store.cache.set_vector_search_results(f"v-{user.id}", user.id, [{"doc": doc.id}])
    store.cache.set_llm_response(f"p-{user.id}", f"hello {name}", "acme", user_id=user.id)
    store.ratelimit.check_and_increment(user.id, "chat", 10, 60)
    store.audit.log("user.login", actor_id=user.id, subject_id=user.id,
                    details={"email": email}, ip_address="198.51.100.7")
    return user


def _rows(store: clonestore.Store) -> dict[str, list[dict[str, Any]]]:
    return {name: store.backend.select(spec, TRUE) for name, spec in store.tables.items()}


def _mentions(row: dict[str, Any], *needles: str) -> bool:
    return any(n in repr(row) for n in needles)


@pytest.fixture
def store(store_factory: StoreFactory, clonestore_url: str) -> Iterator[clonestore.Store]:
    """A store with the cache, rate-limit and audit plugins (on PostgreSQL the append-only
    audit log is emptied before and after, as the plugin tests do)."""
    if is_postgres(clonestore_url):
        _empty_audit_log(clonestore_url)
    yield store_factory(plugins=PLUGINS)
    if is_postgres(clonestore_url):
        _empty_audit_log(clonestore_url)


def test_export_holds_every_row_about_the_user(store: clonestore.Store) -> None:
    """Every row of every table (plugins' included) that mentions the user is in the export,
    and nothing of another user is."""
    ada = _populate(store, "ada@example.com", "Adaline")
    bob = _populate(store, "bob@example.com", "Bobbert")
    exported = store.export_user(ada.id)
    text = json.dumps(exported)
    assert {"user", "sessions", "turns", "documents", "memories", "voice_models",
            "face_models", "cache", "ratelimit", "audit"} <= set(exported)
    for name, rows in _rows(store).items():
        for row in rows:
            if _mentions(row, ada.id) and not _mentions(row, bob.id):
                key = next(str(row[k]) for k in ("query_hash", "prompt_hash", "endpoint", "id")
                           if k in row)
                assert key in text, f"{name} row {key} about the user is missing from the export"
    assert bob.id not in text
    assert "Bobbert" not in text


def test_erasure_leaves_nothing_and_keeps_the_audit_chain(store: clonestore.Store) -> None:
    """After erase_user no table holds the user's id, email or name (audit rows only their
    pseudonymous resource id and chain owner, personal fields redacted), another user is
    untouched, and audit.verify() still passes."""
    ada = _populate(store, "ada@example.com", "Adaline")
    bob = _populate(store, "bob@example.com", "Bobbert")
    before_bob = {name: [r for r in rows if _mentions(r, bob.id)]
                  for name, rows in _rows(store).items() if name not in ("audit_entries",
                                                                         "audit_heads")}
    store.erase_user(ada.id)
    for name, rows in _rows(store).items():
        for row in rows:
            assert not _mentions(row, "ada@example.com", "Adaline", "203.0.113.9" if
                                 _mentions(row, ada.id) else "\x00"), f"{name}: {row}"
            if name == "audit_entries":  # the chain's owner: a pseudonymous key, as resource_id
                assert {k for k, v in row.items() if v == ada.id} <= {"resource_id", "owner"}, row
            elif name == "audit_heads":
                assert {k for k, v in row.items() if v == ada.id} <= {"name"}, row
            else:
                assert not _mentions(row, ada.id), f"{name} still holds the user: {row}"
    after_bob = {name: [r for r in rows if _mentions(r, bob.id)]
                 for name, rows in _rows(store).items() if name in before_bob}
    assert after_bob == before_bob
    assert store.audit.verify().ok
    assert store.export_user(bob.id)["user"]["email"] == "bob@example.com"
    with pytest.raises(clonestore.NotFound):
        store.export_user(ada.id)


def test_erasure_through_a_users_view(store: clonestore.Store) -> None:
    """A user's view erases its owner and nobody else."""
    ada = _populate(store, "ada@example.com", "Adaline")
    bob = _populate(store, "bob@example.com", "Bobbert")
    with pytest.raises(clonestore.NotFound):
        store.for_user(ada.id).erase_user(bob.id)
    store.for_user(ada.id).erase_user()
    assert store.users.get_or_none(ada.id) is None
    assert store.users.get(bob.id).email == "bob@example.com"
    assert store.audit.verify().ok
