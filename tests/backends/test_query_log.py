"""The SQL backends' query log: statements with their duration on the clonestore.sql
logger, parameters never shown as values, slow ones at WARNING, and no wrapper at all
when nothing is asked for. Runs on SQLite and PostgreSQL (memory:// has no SQL)."""

from __future__ import annotations

import logging

import pytest

import clonestore

LOGGER = "clonestore.sql"
SECRET_EMAIL = "hidden.person@example.com"


@pytest.fixture
def clonestore_url(shared_url: str) -> str:
    """SQLite and PostgreSQL only: the store_factory of these tests follows."""
    return shared_url


@pytest.fixture(autouse=True)
def _quiet_logger():
    """Each test starts with the logger as the application left it (NOTSET)."""
    logger = logging.getLogger(LOGGER)
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


def test_log_queries_shows_each_statement_with_duration_and_redacted_params(
    store_factory, caplog: pytest.LogCaptureFixture
) -> None:
    """log_queries=True logs every statement at DEBUG with its duration in ms and its
    parameters as types, never the values."""
    store = store_factory(log_queries=True)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        caplog.clear()
        user = store.users.create(email=SECRET_EMAIL, name="Hidden Person")
        store.users.get(user.id)
    records = [r for r in caplog.records if r.name == LOGGER]
    assert any("INSERT INTO" in r.getMessage() for r in records)
    select = next(
        r for r in records if 'FROM "users"' in r.getMessage() or "FROM `users`" in r.getMessage()
    )
    assert select.levelno == logging.DEBUG
    assert " ms on " in select.getMessage()
    assert select.duration_ms >= 0  # type: ignore[attr-defined]
    assert "params=(str(36)" in select.getMessage()
    everything = caplog.text
    assert SECRET_EMAIL not in everything
    assert user.id not in everything
    assert "Hidden Person" not in everything


def test_the_logger_at_debug_turns_the_log_on(
    shared_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without log_queries, the clonestore.sql logger at DEBUG when the store opens logs
    statements; below DEBUG the backend runs statements unwrapped."""
    with caplog.at_level(logging.DEBUG, logger=LOGGER), clonestore.open(shared_url) as store:
        store.users.count()
    assert any("SELECT COUNT" in r.getMessage().upper() for r in caplog.records)
    logging.getLogger(LOGGER).setLevel(logging.INFO)
    with clonestore.open(shared_url) as store:
        assert "execute" not in vars(store.backend)


def test_slow_queries_are_warnings(shared_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Statements at or over slow_query_ms log at WARNING, marked slow; a threshold no
    statement reaches logs nothing."""
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        with clonestore.open(shared_url, slow_query_ms=0) as store:
            store.users.count()
        slow = [r for r in caplog.records if r.name == LOGGER]
        assert slow
        assert all(r.levelno == logging.WARNING for r in slow)
        assert all(r.getMessage().startswith("slow query: ") for r in slow)
        caplog.clear()
        with clonestore.open(f"{shared_url}{'&' if '?' in shared_url else '?'}"
                             "slow_query_ms=60000") as store:
            store.users.count()
        assert not [r for r in caplog.records if r.name == LOGGER]


def test_a_failed_statement_is_logged_as_failed(
    store_factory, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement the engine refuses is logged as failed, and the caller still gets the
    clonestore error."""
    store = store_factory(log_queries=True)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        store.users.create(email="dup@example.com", name="One")
        caplog.clear()
        with pytest.raises(clonestore.AlreadyExists):
            store.users.create(email="dup@example.com", name="Two")
    assert any(r.getMessage().startswith("failed ") for r in caplog.records if r.name == LOGGER)


def test_bad_query_log_options_are_configuration_errors(shared_url: str) -> None:
    """slow_query_ms and log_queries are validated like every backend option."""
    with pytest.raises(clonestore.ConfigurationError, match="slow_query_ms"):
        clonestore.open(shared_url, slow_query_ms=-1)
    with pytest.raises(clonestore.ConfigurationError, match="log_queries"):
        clonestore.open(shared_url, log_queries="maybe")
