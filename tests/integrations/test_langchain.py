"""clonestore.integrations.langchain: LangChain's own standard vector store tests
(``langchain_tests.integration_tests.VectorStoreIntegrationTests``, unmodified) on
memory://, SQLite (sqlite-vec), PostgreSQL without pgvector (the server of
CLONESTORE_TEST_POSTGRES_URL, CI's) and PostgreSQL 16 with pgvector (pgserver), over a
synchronous store (the async methods then run in threads, LangChain's default) and over
``open_async`` (the async methods await the store); and what the adapter adds: metadata
filters, relevance scores, k=0, owners kept apart."""

from __future__ import annotations

import math
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from langchain_core.documents import Document
from langchain_tests.integration_tests import VectorStoreIntegrationTests

import clonestore
from clonestore import ValidationError
from clonestore.integrations.langchain import ClonestoreVectorStore, metadata_where, relevance


def _email() -> str:
    return f"lc-{secrets.token_hex(6)}@example.com"


def _sync_store(url: str) -> Iterator[ClonestoreVectorStore]:
    """A new user's (empty) vector store; the user is erased afterwards, so that the
    suite's ids ("1", "2") are free again in the session's shared database."""
    with clonestore.open(url) as store:
        user = store.users.create(email=_email(), name="LangChain")
        try:
            yield ClonestoreVectorStore(
                store, user.id, VectorStoreIntegrationTests.get_embeddings()
            )
        finally:
            store.erase_user(user.id)


async def _async_store(url: str) -> AsyncIterator[ClonestoreVectorStore]:
    """:func:`_sync_store` over ``open_async``."""
    async with clonestore.open_async(url) as store:
        user = await store.users.create(email=_email(), name="LangChain")
        try:
            yield ClonestoreVectorStore(
                store, user.id, VectorStoreIntegrationTests.get_embeddings()
            )
        finally:
            await store.erase_user(user.id)


def _sqlite(tmp_path: Path) -> str:
    return "sqlite:///" + str((tmp_path / "langchain.db").resolve())


class TestMemory(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self) -> Iterator[ClonestoreVectorStore]:  # type: ignore[override]
        yield from _sync_store("memory://")


class TestSqlite(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, tmp_path: Path) -> Iterator[ClonestoreVectorStore]:  # type: ignore[override]
        yield from _sync_store(_sqlite(tmp_path))


class TestPostgres(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, postgres_url: str) -> Iterator[ClonestoreVectorStore]:  # type: ignore[override]
        yield from _sync_store(postgres_url)


class TestPgvector(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, pgvector_url: str) -> Iterator[ClonestoreVectorStore]:  # type: ignore[override]
        yield from _sync_store(pgvector_url)


class _OpenAsync(VectorStoreIntegrationTests):
    """Over ``open_async``: the async half of the suite (the sync half runs above)."""

    @property
    def has_sync(self) -> bool:
        return False


class TestMemoryAsync(_OpenAsync):
    @pytest_asyncio.fixture
    async def vectorstore(self) -> AsyncIterator[ClonestoreVectorStore]:  # type: ignore[override]
        async for vectors in _async_store("memory://"):
            yield vectors


class TestSqliteAsync(_OpenAsync):
    @pytest_asyncio.fixture
    async def vectorstore(  # type: ignore[override]
        self, tmp_path: Path
    ) -> AsyncIterator[ClonestoreVectorStore]:
        async for vectors in _async_store(_sqlite(tmp_path)):
            yield vectors


class TestPostgresAsync(_OpenAsync):
    @pytest_asyncio.fixture
    async def vectorstore(  # type: ignore[override]
        self, postgres_url: str
    ) -> AsyncIterator[ClonestoreVectorStore]:
        async for vectors in _async_store(postgres_url):
            yield vectors


class TestPgvectorAsync(_OpenAsync):
    @pytest_asyncio.fixture
    async def vectorstore(  # type: ignore[override]
        self, pgvector_url: str
    ) -> AsyncIterator[ClonestoreVectorStore]:
        async for vectors in _async_store(pgvector_url):
            yield vectors


# ----------------------------------------------------------------------------- the adapter


@pytest.fixture
def vectors(clonestore_url: str) -> Iterator[ClonestoreVectorStore]:
    """A vector store over the backend under test (the matrix of tests/matrix.py)."""
    yield from _sync_store(clonestore_url)


_DOCS = [
    Document(page_content="tea", metadata={"kind": "preference", "n": 1}),
    Document(page_content="coffee", metadata={"kind": "preference", "n": 3}),
    Document(page_content="paris", metadata={"kind": "fact", "n": 2}),
]


def test_filter_matches_metadata(vectors: ClonestoreVectorStore) -> None:
    """filter= keeps documents whose metadata matches, with LangChain's operators."""
    ids = vectors.add_documents(_DOCS, ids=["t", "c", "p"])
    assert ids == ["t", "c", "p"]
    kinds = vectors.similarity_search("tea", k=10, filter={"kind": "preference"})
    assert sorted(d.id for d in kinds) == ["c", "t"]
    big = vectors.similarity_search("tea", k=10, filter={"n": {"$gte": 2}})
    assert sorted(d.id for d in big) == ["c", "p"]
    both = vectors.similarity_search(
        "tea", k=10, filter={"$and": [{"kind": "preference"}, {"n": {"$in": [3, 7]}}]}
    )
    assert [d.id for d in both] == ["c"]
    assert vectors.similarity_search("tea", k=10, filter={"kind": "nothing"}) == []


def test_k_zero_returns_nothing(vectors: ClonestoreVectorStore) -> None:
    """k=0 returns [] from every search."""
    vectors.add_documents(_DOCS)
    assert vectors.similarity_search("tea", k=0) == []
    assert vectors.similarity_search_with_relevance_scores("tea", k=0) == []
    assert vectors.max_marginal_relevance_search("tea", k=0) == []


def test_relevance_scores_are_in_the_unit_interval_best_first(
    vectors: ClonestoreVectorStore,
) -> None:
    """Relevance scores lie in [0, 1], 1 for the query's own text, ordered as the scores."""
    vectors.add_documents(_DOCS)
    found = vectors.similarity_search_with_relevance_scores("paris", k=3)
    assert found[0][0].page_content == "paris"
    assert found[0][1] == pytest.approx(1.0, abs=1e-6)
    values = [score for _, score in found]
    assert values == sorted(values, reverse=True)
    assert all(0.0 <= v <= 1.0 for v in values)


def test_relevance_maps_every_metric_monotonically_into_the_unit_interval() -> None:
    """relevance(): cosine (1+s)/2, l2 1/(1+d), ip logistic; in [0, 1], order kept."""
    assert [relevance("cosine", s) for s in (-1.0, 0.0, 1.0)] == [0.0, 0.5, 1.0]
    assert [relevance("l2", d) for d in (0.0, 1.0, 3.0)] == [1.0, 0.5, 0.25]
    ips = [relevance("ip", x) for x in (-1e6, -2.0, 0.0, 2.0, 1e6)]
    assert ips == sorted(ips)
    assert (ips[0], ips[2], ips[-1]) == (0.0, 0.5, 1.0)
    assert ips[3] == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_filters_become_metadata_lookups() -> None:
    """A LangChain filter becomes clonestore's metadata lookups; unknown operators are
    ValidationError."""
    assert metadata_where({"a": 1, "b": {"$ne": "x", "$lt": 3}}) == {
        "metadata__a": 1,
        "metadata__b__ne": "x",
        "metadata__b__lt": 3,
    }
    for bad in ({"$or": []}, {"a": {"$regex": "x"}}, {"$and": [{"a": 1}, {"a": 2}]}):
        with pytest.raises(ValidationError):
            metadata_where(bad)


def test_owners_are_kept_apart(clonestore_url: str) -> None:
    """A user's vector store neither finds nor replaces nor deletes another user's memories."""
    embeddings = VectorStoreIntegrationTests.get_embeddings()
    with clonestore.open(clonestore_url) as store:
        ada, bob = (store.users.create(email=_email(), name=n) for n in ("Ada", "Bob"))
        mine = ClonestoreVectorStore(store, ada.id, embeddings)
        theirs = ClonestoreVectorStore(store, bob.id, embeddings)
        mine.add_texts(["tea"], ids=["shared"])
        assert theirs.similarity_search("tea", k=5) == []
        assert theirs.get_by_ids(["shared"]) == []
        theirs.delete(["shared"])
        assert [d.page_content for d in mine.get_by_ids(["shared"])] == ["tea"]
        with pytest.raises(clonestore.AlreadyExists):
            theirs.add_texts(["coffee"], ids=["shared"])
        assert [d.page_content for d in mine.get_by_ids(["shared"])] == ["tea"]
        store.erase_user(ada.id)


def test_the_sync_methods_of_an_async_store_say_so() -> None:
    """Over open_async the synchronous methods raise TypeError naming the async ones."""

    async def check() -> None:
        async for vectors in _async_store("memory://"):
            with pytest.raises(TypeError, match="async methods"):
                vectors.similarity_search("tea")

    import asyncio

    asyncio.run(check())


def test_readme_example_runs() -> None:
    """The README's LangChain example runs as shown (its asserts hold)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- langchain-example:start -->")[1].split(
        "<!-- langchain-example:end -->"
    )[0]
    source = block.strip().removeprefix("```python").removesuffix("```")
    exec(compile(source, "README.md (LangChain example)", "exec"), {})
