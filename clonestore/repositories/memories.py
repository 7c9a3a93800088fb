"""Memories a clone keeps about its person, recalled by exact vector similarity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Unpack

import attrs

from clonestore.errors import ValidationError
from clonestore.fields import MemoryChanges, MemoryCreate
from clonestore.records import Memory
from clonestore.repositories.base import MAX_SEARCH_LIMIT, Scored, _bad_int
from clonestore.repositories.owned import OwnedRepository
from clonestore.schema import VectorLike, check
from clonestore.spi import Row
from clonestore.text import RRF_K, fuse, parse_query
from clonestore.vectors import METRICS

__all__ = ["METRICS", "MemoryRepository", "ScoredMemory", "VectorLike"]


@attrs.frozen
class ScoredMemory:
    """A memory and its score against the query (see :data:`METRICS`)."""

    memory: Memory
    score: float


class MemoryRepository(OwnedRepository[Memory]):
    """A user's memories."""

    noun = "memory"
    search_fields = ("content",)

    if TYPE_CHECKING:  # the keywords each takes (clonestore.fields); the base class runs them

        def create(self, **fields: Unpack[MemoryCreate]) -> Memory: ...  # type: ignore[override]

        def update(  # type: ignore[override]
            self,
            id: str,
            /,
            expected_version: int | None = None,
            **changes: Unpack[MemoryChanges],
        ) -> Memory: ...

    def _check_references(self, rows: Sequence[Row]) -> None:
        """The owner exists, and a memory's session is one of its owner's sessions (the
        same ValidationError for another user's session and for none at all)."""
        super()._check_references(rows)
        sessions = self.repos["sessions"]
        for row in rows:
            session_id = row.get("session_id")
            if session_id is None:
                continue
            session = sessions._get_row(session_id)
            if session is None or session["user_id"] != row["user_id"]:
                raise ValidationError(
                    f"no session with id {session_id} of this memory's user", field="session_id"
                )

    def add(
        self, user_id: str, content: str, embedding: VectorLike | None = None, **fields: Any
    ) -> Memory:
        """Remember something about the user (without an embedding, it is not recalled by
        ``similar``)."""
        return self.create(user_id=user_id, content=content, embedding=embedding, **fields)

    def similar(
        self,
        user_id: str,
        embedding: VectorLike,
        limit: int = 5,
        metric: str = "cosine",
        *,
        where: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        max_distance: float | None = None,
        approximate: bool = False,
    ) -> list[ScoredMemory]:
        """The user's live memories most similar to ``embedding``, best first.

        Exact by default: cosine similarity (``metric="cosine"``, highest first),
        Euclidean distance (``"l2"``, nearest first) or inner product (``"ip"``,
        highest first) computed in double precision from the stored values, ties
        broken by id, on every backend. Only memories whose embedding has the
        query's dimension are compared; memories with a zero embedding have no
        cosine similarity and are skipped (under ``ip`` they score 0).
        ``embedding`` is any vector a memory takes (a list, a tuple, a numpy
        array, ``array('f')``), rounded to float32 (items below ``2**-50`` in magnitude
        to 0) as stored embeddings are.
        ``where`` adds lookups (``memory_type="preference"``); ``min_score``
        (cosine, ip) or ``max_distance`` (l2) drops weaker matches. ``limit=0``
        returns ``[]`` (as every vector store does); a limit above the number of
        memories returns them all. With
        ``approximate=True`` a backend with an approximate index (PostgreSQL's
        HNSW, see the README) may use it: faster, but some of the exact top
        matches may be missing (scores stay exact).
        """
        owner = self._check_owner(user_id)
        conditions = {"user_id": owner, **(where or {})}
        return self.nearest(
            embedding,
            limit=limit,
            metric=metric,
            where=conditions,
            min_score=min_score,
            max_distance=max_distance,
            approximate=approximate,
            verb="similar",
        )

    def nearest(
        self,
        embedding: VectorLike,
        limit: int = 5,
        metric: str = "cosine",
        *,
        where: Mapping[str, Any] | None = None,
        min_score: float | None = None,
        max_distance: float | None = None,
        approximate: bool = False,
        verb: str = "nearest",
    ) -> list[ScoredMemory]:
        """The live memories matching ``where`` (any owner) nearest to ``embedding``;
        as :meth:`similar`, which is this with ``where={"user_id": ...}``."""
        if metric not in METRICS:
            raise ValidationError(f"must be one of {', '.join(METRICS)}", field="metric")
        if type(limit) is not int or limit < 0:
            raise ValidationError(f"must be a non-negative integer, got {limit!r}", field="limit")
        if type(approximate) is not bool:
            raise ValidationError("must be True or False", field="approximate")
        cutoff = self._cutoff(metric, min_score, max_distance)
        column = self.spec.column("embedding")
        if embedding is None:  # the column takes None (a memory without one), a query not
            raise ValidationError("a query needs a vector", field="embedding")
        query = check(column, embedding)
        if metric == "cosine" and not any(query):
            raise ValidationError("a zero vector has no cosine similarity", field="embedding")
        if limit == 0:  # validated as any search, then nothing to ask the backend
            return []
        found = self._gateway.nearest(
            self.spec,
            self._where(where),
            "embedding",
            query,
            metric,
            limit,
            cutoff,
            approximate,
            action=f"{self.noun}.{verb}",
        )
        return [ScoredMemory(self._load(row), value) for row, value in found]

    def recall(
        self,
        user_id: str,
        *,
        text: str | None = None,
        embedding: VectorLike | None = None,
        limit: int = 10,
        where: Mapping[str, Any] | None = None,
        depth: int = 50,
    ) -> list[Scored[Memory]]:
        """The user's live memories best for ``text`` and/or ``embedding``: the text
        search's ranking (BM25) and the exact cosine ranking (``similar``), each its best
        ``depth`` (at least ``limit``), fused by reciprocal rank fusion
        (:func:`clonestore.text.fuse`, ``k`` = 60), best first, ties by id. The score is
        the fused one. The same on every backend, as both rankings are.
        """
        owner = self._check_owner(user_id)
        if text is None and embedding is None:
            raise ValidationError("recall needs text, an embedding or both", field="text")
        if error := _bad_int("limit", limit, 0, MAX_SEARCH_LIMIT):
            raise error
        if error := _bad_int("depth", depth, 1, MAX_SEARCH_LIMIT):
            raise error
        if text is not None:
            parse_query(text)  # refused before anything is read
        conditions = {**(where or {}), "user_id": owner}
        depth = max(depth, limit)
        rankings: list[list[Memory]] = []
        if text is not None:
            rankings.append([s.record for s in self.search(text, limit=depth, where=conditions)])
        if embedding is not None:
            rankings.append(
                [s.memory for s in self.nearest(embedding, depth, where=conditions, verb="recall")]
            )
        records = {m.id: m for ranking in rankings for m in ranking}
        fused = fuse([[m.id for m in ranking] for ranking in rankings], RRF_K)
        return [Scored(records[key], value) for key, value in fused[:limit]]

    @staticmethod
    def _cutoff(metric: str, min_score: Any, max_distance: Any) -> float | None:
        given, other, name = (
            (max_distance, min_score, "max_distance")
            if metric == "l2"
            else (min_score, max_distance, "min_score")
        )
        if other is not None:
            wrong = "min_score" if name == "max_distance" else "max_distance"
            raise ValidationError(f"{wrong} does not apply to metric {metric!r}", field=wrong)
        if given is None:
            return None
        if type(given) is int:
            given = float(given)
        if type(given) is not float or given != given or given in (float("inf"), float("-inf")):
            raise ValidationError("must be a finite number", field=name)
        return float(given)
