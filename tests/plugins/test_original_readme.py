"""Every call of the original ``@clone/database`` README, replayed through the Python API
on every backend of the matrix.

Each test is one section of that README, in order, with its TypeScript calls as
comments and their Python form below (camelCase becomes snake_case; an object
argument becomes keywords; the names DESIGN gives the seed system's operations:
``endSession`` is ``end``, ``getUserStatistics`` is ``user_statistics``,
``updateVectorIds`` is ``set_vector_ids``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import clonestore
from clonestore import ValidationError
from clonestore.testing import FrozenClock, StoreFactory
from clonestore.vectors import float32_values

PLUGINS = ["cache", "ratelimit", "audit"]


@pytest.fixture
def factory(store_factory: StoreFactory) -> clonestore.Store:
    """The original package's factory: a store with the cache, rate limit and audit."""
    return store_factory(plugins=PLUGINS)


@pytest.fixture
def user_id(factory: clonestore.Store) -> str:
    """A user the sections below work for."""
    return factory.users.create(email="owner@example.com", name="Owner").id


def test_initialize_database_connection(clonestore_url: str) -> None:
    """connect, healthCheck and disconnect: open(), health()["ok"] and close()."""
    # await DatabaseConnection.connect();
    store = clonestore.open(clonestore_url)
    # const isHealthy = await DatabaseConnection.healthCheck();
    is_healthy = store.health()["ok"]
    assert is_healthy is True
    # await DatabaseConnection.disconnect();
    store.close()
    assert store.closed


def test_using_repositories(factory: clonestore.Store) -> None:
    """User create, findByEmail, update, soft delete and restore work as written."""
    user_repo = factory.users  # factory.getUserRepository()
    user = user_repo.create(
        email="user@example.com",
        name="John Doe",
        personality_traits=["friendly", "professional"],
        subscription_tier="free",
        settings={},
    )
    found_user = user_repo.find_by_email("user@example.com")
    assert found_user == user
    user_repo.update(user.id, name="Jane Doe")
    user_repo.delete(user.id)
    assert user_repo.get_or_none(user.id) is None
    user_repo.restore(user.id)
    assert user_repo.get(user.id).name == "Jane Doe"


def test_conversation_sessions(factory: clonestore.Store, user_id: str) -> None:
    """Session create with providers and state idle, updateState, endSession, statistics."""
    session_repo = factory.sessions  # factory.getConversationSessionRepository()
    session = session_repo.create(
        user_id=user_id,  # user: { connect: { id: userId } }
        llm_provider="gemini-flash",
        tts_provider="xtts-v2",
        state="idle",
    )
    session_repo.update_state(session.id, "listening")
    session_repo.end(session.id)  # endSession
    stats = session_repo.user_statistics(user_id)  # getUserStatistics
    assert (stats.total_sessions, stats.active_sessions) == (1, 0)
    ended = session_repo.get(session.id)
    assert (ended.llm_provider, ended.tts_provider, ended.state) == (
        "gemini-flash",
        "xtts-v2",
        "listening",
    )


def test_knowledge_documents(factory: clonestore.Store, user_id: str) -> None:
    """Document create (status pending), updateStatus, updateVectorIds, searchByTags."""
    doc_repo = factory.documents  # factory.getKnowledgeDocumentRepository()
    doc = doc_repo.create(
        user_id=user_id,
        filename="document.pdf",
        content_type="application/pdf",
        size_bytes=1024000,
        text_content="Document content...",
        storage_path="gs://bucket/path",
        status="pending",
    )
    doc_repo.update_status(doc.id, "completed")
    doc_repo.set_vector_ids(doc.id, ["vec-1", "vec-2"])  # updateVectorIds
    docs = doc_repo.search_by_tags(user_id, ["technical", "specs"])
    assert docs == []
    stored = doc_repo.get(doc.id)
    assert (stored.status, stored.vector_ids) == ("completed", ("vec-1", "vec-2"))


def test_caching(factory: clonestore.Store, user_id: str) -> None:
    """The three caches with a positional ttl, their getters, and cleanAllExpiredCache."""
    cache_repo = factory.cache  # factory.getCacheRepository()
    results: Sequence[object] = [{"id": "vec-1", "score": 0.9}]
    cache_repo.set_embedding("query-hash", [0.1, 0.2, 0.3], 3600)
    embedding = cache_repo.get_embedding("query-hash")
    assert embedding == float32_values([0.1, 0.2, 0.3])  # vectors are kept as float32
    cache_repo.set_vector_search_results("query-hash", user_id, results, 1800)
    cached = cache_repo.get_vector_search_results("query-hash", user_id)
    assert cached == results
    cache_repo.set_llm_response("prompt-hash", "response", "gemini-flash", 3600)
    response = cache_repo.get_llm_response("prompt-hash")
    assert response is not None
    assert (response.response, response.provider) == ("response", "gemini-flash")
    assert cache_repo.clean_all_expired_cache() == {
        "embedding": 0,
        "vector_search": 0,
        "llm_response": 0,
    }


def test_rate_limiting(factory: clonestore.Store, user_id: str) -> None:
    """checkAndIncrement(user, endpoint, limit, window) and getStatus(user, endpoint, window)."""
    rate_limit_repo = factory.ratelimit  # factory.getRateLimitRepository()
    result = rate_limit_repo.check_and_increment(
        user_id,
        "/api/conversations",
        60,  # limit
        60,  # window in seconds
    )
    assert result.allowed, f"Rate limit exceeded. Reset at {result.reset_at}"
    status = rate_limit_repo.get_status(user_id, "/api/conversations", 60)
    assert status.remaining == 59  # console.log(`Remaining: ${status.remaining}`)


def test_audit_logging(factory: clonestore.Store, user_id: str) -> None:
    """log({userId, action, resource, result, ipAddress, userAgent, metadata}),
    findByUserId and getUserStatistics(userId, 30)."""
    audit_repo = factory.audit  # factory.getAuditLogRepository()
    document_id = "doc-1"
    audit_repo.log(
        user_id=user_id,
        action="document.upload",
        resource=document_id,
        result="success",
        ip_address="203.0.113.9",  # req.ip
        user_agent="app/1.2",  # req.headers['user-agent']
        metadata={"filename": "doc.pdf"},
    )
    logs = audit_repo.find_by_user_id(user_id)
    uploads = [entry for entry in logs if entry.action == "document.upload"]
    assert len(uploads) == 1
    assert (uploads[0].actor_id, uploads[0].resource_id) == (user_id, document_id)
    assert uploads[0].details == {"filename": "doc.pdf"}
    stats = audit_repo.user_statistics(user_id, 30)
    assert stats.by_action["document.upload"] == 1


# ----------------------------------------------------------------------------- their meaning


def test_a_positional_ttl_is_the_entry_lifetime(
    store_factory: StoreFactory, clock: FrozenClock
) -> None:
    """set_embedding/set_vector_search_results/set_llm_response(..., ttl): gone after ttl s."""
    store = store_factory(plugins=["cache"], clock=clock)
    user = store.users.create(email="ttl@example.com", name="T")
    store.cache.set_embedding("q", [0.5], 10)
    store.cache.set_vector_search_results("q", user.id, [1], 20)
    store.cache.set_llm_response("p", "r", "gemini-flash", 30)
    clock.advance(15)
    assert store.cache.get_embedding("q") is None
    assert store.cache.get_vector_search_results("q", user.id) == [1]
    clock.advance(10)
    assert store.cache.get_vector_search_results("q", user.id) is None
    assert store.cache.get_llm_response("p") is not None
    clock.advance(10)
    assert store.cache.get_llm_response("p") is None


def test_get_status_measures_against_the_last_checks_limit_else_the_policy(
    store_factory: StoreFactory, clock: FrozenClock
) -> None:
    """get_status(user, endpoint, window): the limit of the window's last check, else the
    user's tier policy (free: 60 a minute); counting nothing."""
    store = store_factory(plugins=["ratelimit"], clock=clock)
    user = store.users.create(email="rl@example.com", name="R")
    assert store.ratelimit.get_status(user.id, "/chat", 60).remaining == 60
    for _ in range(3):
        store.ratelimit.check_and_increment(user.id, "/chat", 5, 60)
    assert store.ratelimit.get_status(user.id, "/chat", 60).remaining == 2
    assert store.ratelimit.get_status(user.id, "/chat", 60, limit=10).remaining == 7
    assert store.ratelimit.get_status(user.id, "/chat", 60).remaining == 2
    with pytest.raises(ValidationError, match="window_seconds"):
        store.ratelimit.get_status(user.id, "/chat", 0)


def test_audit_log_takes_the_original_names_once(factory: clonestore.Store) -> None:
    """log(user_id=, resource=, metadata=) map to actor_id, resource_id, details; giving
    both names, or an unknown one, is a ValidationError."""
    with pytest.raises(ValidationError, match="not both"):
        factory.audit.log("x.y", user_id="a", actor_id="b")
    with pytest.raises(ValidationError, match="colour"):
        factory.audit.log("x.y", colour="blue")
