"""A LangChain ``VectorStore`` over one user's memories.

``pip install 'clonestore[langchain]'`` (``langchain-core``)::

    from clonestore.integrations.langchain import ClonestoreVectorStore

    vectors = ClonestoreVectorStore(store, user.id, embeddings)
    vectors.add_texts(["Ada prefers tea"], metadatas=[{"kind": "preference"}], ids=["m1"])
    vectors.similarity_search("what does Ada drink?", k=3, filter={"kind": "preference"})
    retriever = vectors.as_retriever(search_kwargs={"k": 3})

Each LangChain document is a memory of the user: ``page_content`` is its
``content``, ``metadata`` its ``metadata`` (a JSON object), ``id`` its id, and
the embedding the ``Embeddings`` computed (stored as float32, as every
clonestore embedding). ``ids`` are the memories' ids (any string of 1 to 128
characters); adding a document with an id that exists replaces that memory
(``memories.upsert``), so adding the same documents twice stores them once.
``delete(ids)`` removes those memories for good (ids not found are ignored).
Documents added without an id get clonestore's generated ids.

Searches are clonestore's exact ``similar``: ``k=0`` returns nothing,
``filter=`` matches metadata keys (``{"kind": "preference"}``, or operators
``$eq``, ``$ne``, ``$lt``, ``$lte``, ``$gt``, ``$gte``, ``$in`` and ``$and``:
``{"score": {"$gte": 3}}``) as clonestore's JSON lookups
(``metadata__kind="preference"``); extra keywords of clonestore's lookups go
in ``where=`` (``where={"memory_type": "fact"}``).

**Scores.** ``similarity_search_with_score`` returns clonestore's exact score
for the store's ``metric``: the cosine similarity (-1 .. 1, higher is more
similar), the Euclidean distance (``"l2"``, lower is more similar) or the inner
product (``"ip"``, higher is more similar). Relevance scores
(``similarity_search_with_relevance_scores``, ``score_threshold`` of a
retriever) follow LangChain's convention, 0 dissimilar to 1 most similar,
mapped monotonically so that ranks are kept and every value lies in [0, 1]:
``(1 + cosine) / 2`` for cosine, ``1 / (1 + distance)`` for l2, and the
logistic ``1 / (1 + exp(-ip))`` for the inner product.

**Async.** Over a store of :func:`clonestore.open_async` the ``a``-methods
(``aadd_texts``, ``asimilarity_search``, ...) await the store (the embeddings'
own async methods compute the vectors), and the synchronous methods raise
``TypeError``. Over a synchronous store both work (the ``a``-methods run the
synchronous ones in a thread, LangChain's default).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from clonestore._async_store import AsyncStore
from clonestore._store import Store
from clonestore._tenancy import UserView
from clonestore.bridge import run_sync
from clonestore.errors import NotFound, ValidationError
from clonestore.records import Memory
from clonestore.repositories.memories import ScoredMemory
from clonestore.vectors import METRICS

__all__ = ["ClonestoreVectorStore", "metadata_where", "relevance"]

T = TypeVar("T")

#: LangChain filter operators and the clonestore lookup each becomes.
_OPERATORS: Final = {
    "$eq": "",
    "$ne": "__ne",
    "$lt": "__lt",
    "$lte": "__lte",
    "$gt": "__gt",
    "$gte": "__gte",
    "$in": "__in",
}


def relevance(metric: str, score: float) -> float:
    """A clonestore score of ``metric`` as a LangChain relevance score in [0, 1] (1 is
    the most similar), monotonic in the score: ``(1 + cosine) / 2``, ``1 / (1 +
    distance)`` for l2, ``1 / (1 + exp(-ip))`` for the inner product."""
    if metric == "cosine":
        return min(1.0, max(0.0, (1.0 + score) / 2.0))
    if metric == "l2":
        return 1.0 / (1.0 + score)
    if metric == "ip":
        if score >= 0:
            return 1.0 / (1.0 + math.exp(-score)) if score < 710 else 1.0
        return math.exp(score) / (1.0 + math.exp(score)) if score > -710 else 0.0
    raise ValueError(f"unknown metric {metric!r}")


def metadata_where(filter: Mapping[str, Any] | None) -> dict[str, Any]:
    """A LangChain metadata ``filter`` as clonestore lookups on ``metadata``."""
    where: dict[str, Any] = {}
    if not filter:
        return where
    if not isinstance(filter, Mapping):
        raise ValidationError("must be a dict of metadata keys", field="filter")
    for key, condition in filter.items():
        if key == "$and":
            if not isinstance(condition, list):
                raise ValidationError("$and takes a list of filters", field="filter")
            for part in condition:
                _merge(where, metadata_where(part))
            continue
        if not isinstance(key, str) or key.startswith("$"):
            raise ValidationError(f"unsupported filter operator {key!r}", field="filter")
        if (
            isinstance(condition, Mapping)
            and condition
            and all(isinstance(op, str) and op.startswith("$") for op in condition)
        ):
            for op, value in condition.items():
                if op not in _OPERATORS:
                    raise ValidationError(f"unsupported filter operator {op!r}", field="filter")
                _merge(where, {f"metadata__{key}{_OPERATORS[op]}": value})
        else:
            _merge(where, {f"metadata__{key}": condition})
    return where


def _merge(where: dict[str, Any], more: Mapping[str, Any]) -> None:
    for lookup, value in more.items():
        if lookup in where and where[lookup] != value:
            raise ValidationError(f"two conditions for {lookup}", field="filter")
        where[lookup] = value


def _document(memory: Memory) -> Document:
    return Document(id=memory.id, page_content=memory.content, metadata=dict(memory.metadata))


class ClonestoreVectorStore(VectorStore):
    """The memories of user ``user_id`` in ``store`` (a :class:`clonestore.Store` or
    an :class:`clonestore.AsyncStore`) as a LangChain vector store; ``embedding``
    computes the vectors; ``metric`` is the search's (``"cosine"``, ``"l2"`` or
    ``"ip"``); ``memory_type`` the type of the memories added. See the module."""

    def __init__(
        self,
        store: Store | AsyncStore,
        user_id: str,
        embedding: Embeddings,
        *,
        metric: str = "cosine",
        memory_type: str = "fact",
    ) -> None:
        if metric not in METRICS:
            raise ValidationError(f"must be one of {', '.join(METRICS)}", field="metric")
        self.store = store
        self.user_id = user_id
        self.embedding = embedding
        self.metric = metric
        self.memory_type = memory_type
        self._async = isinstance(store, AsyncStore)
        view: Any = store.for_user(user_id)
        self._view: UserView = view.view if self._async else view

    @property
    def embeddings(self) -> Embeddings:
        """The embeddings model."""
        return self.embedding

    # ------------------------------------------------------------------ one meaning

    def _sync(self) -> UserView:
        if self._async:
            raise TypeError(
                "this vector store is over an open_async store: use the async methods "
                "(aadd_texts, asimilarity_search, ...)"
            )
        return self._view

    async def _bridged(self, call: Callable[..., T], *args: Any) -> T:
        if not self._async:  # a synchronous store: LangChain's way, in a thread
            from langchain_core.runnables.config import run_in_executor

            return await run_in_executor(None, call, self._view, *args)
        return await run_sync(call, self._view, *args)

    def _fields(self, text: str, metadata: Mapping[str, Any] | None, vector: Any) -> dict[str, Any]:
        return {
            "content": text,
            "embedding": vector,
            "metadata": dict(metadata or {}),
            "memory_type": self.memory_type,
        }

    def _rows(
        self,
        texts: list[str],
        metadatas: list[dict[str, Any]] | None,
        ids: Sequence[str | None] | None,
        vectors: list[list[float]],
    ) -> list[tuple[str | None, dict[str, Any]]]:
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValidationError("must have one item per text", field="metadatas")
        if ids is not None and len(ids) != len(texts):
            raise ValidationError("must have one item per text", field="ids")
        return [
            (
                None if ids is None else ids[i],
                self._fields(text, None if metadatas is None else metadatas[i], vectors[i]),
            )
            for i, text in enumerate(texts)
        ]

    @staticmethod
    def _write(view: UserView, rows: list[tuple[str | None, dict[str, Any]]]) -> list[str]:
        """Create the rows without an id, upsert those with one, all or nothing; the
        ids in the rows' order."""
        out: list[str | None] = [id for id, _ in rows]
        new = [i for i, (id, _) in enumerate(rows) if id is None]
        with view.transaction():
            for id, fields in rows:
                if id is not None:
                    view.memories.upsert(id, **fields)
            created = view.memories.create_many([rows[i][1] for i in new]) if new else []
        for i, memory in zip(new, created, strict=True):
            out[i] = memory.id
        return [id for id in out if id is not None]

    @staticmethod
    def _delete(view: UserView, ids: list[str]) -> None:
        with view.transaction():
            for id in dict.fromkeys(ids):
                # not there (or not an id): nothing to do
                with contextlib.suppress(NotFound, ValidationError):
                    view.memories.hard_delete(id)

    @staticmethod
    def _get(view: UserView, ids: Sequence[str]) -> list[Document]:
        wanted = list(dict.fromkeys(ids))
        try:
            found = {m.id: m for m in view.memories.find_many(id__in=wanted)} if wanted else {}
        except ValidationError:  # an id no memory can have
            found = {}
            for id in wanted:
                with contextlib.suppress(NotFound, ValidationError):
                    found[id] = view.memories.get(id)
        return [_document(found[id]) for id in wanted if id in found]

    def _search(
        self, view: UserView, vector: list[float], k: int, filter: Any, where: Any
    ) -> list[ScoredMemory]:
        conditions = {**metadata_where(filter), **(where or {})}
        return view.memories.similar(
            self.user_id, vector, limit=k, metric=self.metric, where=conditions
        )

    def _scored(self, found: list[ScoredMemory]) -> list[tuple[Document, float]]:
        return [(_document(r.memory), r.score) for r in found]

    def _mmr(
        self, vector: list[float], found: list[ScoredMemory], k: int, lambda_mult: float
    ) -> list[Document]:
        if not found or k <= 0:
            return []
        chosen = maximal_marginal_relevance(
            np.asarray(vector), [list(r.memory.embedding or ()) for r in found], lambda_mult, k
        )
        return [_document(found[i].memory) for i in chosen]

    # ------------------------------------------------------------------ sync

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store ``texts`` (see the module for ``ids``); their ids."""
        view = self._sync()
        texts = list(texts)
        vectors = self.embedding.embed_documents(texts) if texts else []
        return self._write(view, self._rows(texts, metadatas, ids, vectors))

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Remove the memories with these ids (ids not found are ignored)."""
        self._delete(self._sync(), list(ids or []))
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in their order (ids not found are left out)."""
        return self._get(self._sync(), ids)

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """The ``k`` memories most similar to ``query`` with clonestore's scores."""
        self._sync()
        return self.similarity_search_with_score_by_vector(
            self.embedding.embed_query(query), k, filter, where=where
        )

    def similarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """The ``k`` memories most similar to ``embedding`` with clonestore's scores."""
        return self._scored(self._search(self._sync(), embedding, k, filter, where))

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` memories most similar to ``query``."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` memories most similar to ``embedding``."""
        found = self.similarity_search_with_score_by_vector(embedding, k, **kwargs)
        return [doc for doc, _ in found]

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` of the ``fetch_k`` most similar memories, chosen for diversity (MMR)."""
        vector = self.embedding.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search` from a query vector."""
        view = self._sync()
        found = self._search(view, embedding, fetch_k, kwargs.get("filter"), kwargs.get("where"))
        return self._mmr(embedding, found, k, lambda_mult)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        metric = self.metric
        return lambda score: relevance(metric, score)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> ClonestoreVectorStore:
        """A vector store over ``store=`` and ``user_id=`` (keywords) holding ``texts``."""
        vectors = cls(kwargs.pop("store"), kwargs.pop("user_id"), embedding, **kwargs)
        vectors.add_texts(texts, metadatas, ids=ids)
        return vectors

    # ------------------------------------------------------------------ async

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """:meth:`add_texts`, awaited."""
        texts = list(texts)
        vectors = await self.embedding.aembed_documents(texts) if texts else []
        return await self._bridged(self._write, self._rows(texts, metadatas, ids, vectors))

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """:meth:`delete`, awaited."""
        await self._bridged(self._delete, list(ids or []))
        return True

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """:meth:`get_by_ids`, awaited."""
        return await self._bridged(self._get, ids)

    async def asimilarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_with_score`, awaited."""
        vector = await self.embedding.aembed_query(query)
        return await self.asimilarity_search_with_score_by_vector(vector, k, filter, where=where)

    async def asimilarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        *,
        where: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """:meth:`similarity_search_with_score_by_vector`, awaited."""
        found = await self._bridged(self._search, embedding, k, filter, where)
        return self._scored(found)

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """:meth:`similarity_search`, awaited."""
        found = await self.asimilarity_search_with_score(query, k, **kwargs)
        return [doc for doc, _ in found]

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """:meth:`similarity_search_by_vector`, awaited."""
        found = await self.asimilarity_search_with_score_by_vector(embedding, k, **kwargs)
        return [doc for doc, _ in found]

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search`, awaited."""
        vector = await self.embedding.aembed_query(query)
        return await self.amax_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, **kwargs
        )

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search_by_vector`, awaited."""
        found = await self._bridged(
            self._search, embedding, fetch_k, kwargs.get("filter"), kwargs.get("where")
        )
        return self._mmr(embedding, found, k, lambda_mult)

    @classmethod
    async def afrom_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> ClonestoreVectorStore:
        """:meth:`from_texts`, awaited."""
        vectors = cls(kwargs.pop("store"), kwargs.pop("user_id"), embedding, **kwargs)
        await vectors.aadd_texts(texts, metadatas, ids=ids)
        return vectors
