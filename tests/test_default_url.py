"""Where a store opens without a URL: ``$CLONESTORE_URL``, else ``$DATABASE_URL`` (the
original application's Prisma variable), else a SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import clonestore
from clonestore._opening import DEFAULT_URL, default_url


@pytest.fixture
def no_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Neither variable set; the working directory a fresh tmp_path."""
    monkeypatch.delenv("CLONESTORE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_database_url_is_honoured_when_clonestore_url_is_unset(
    no_urls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open(), open_async() and the command open $DATABASE_URL when $CLONESTORE_URL is unset,
    and $CLONESTORE_URL when both are."""
    assert default_url() == DEFAULT_URL
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{no_urls / 'from_database_url.db'}")
    with clonestore.open() as store:
        store.users.create(email="ada@example.com", name="Ada")
    assert (no_urls / "from_database_url.db").exists()
    assert not (no_urls / "clonestore.db").exists()

    async def count() -> int:
        async with clonestore.open_async() as store:
            return await store.users.count()

    assert asyncio.run(count()) == 1
    monkeypatch.setenv("CLONESTORE_URL", f"sqlite:///{no_urls / 'from_clonestore_url.db'}")
    with clonestore.open() as store:
        assert store.users.count() == 0
    assert (no_urls / "from_clonestore_url.db").exists()


def test_prismas_sqlite_form_is_a_sqlite_url(
    no_urls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DATABASE_URL=file:./dev.db (Prisma's SQLite URL) opens ./dev.db."""
    monkeypatch.setenv("DATABASE_URL", "file:./dev.db")
    assert default_url() == "sqlite:///./dev.db"
    with clonestore.open() as store:
        store.users.create(email="ada@example.com", name="Ada")
    assert (no_urls / "dev.db").exists()
