"""Memories a clone keeps about its person, recalled by exact vector similarity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Unpack

import attrs

from clonestore.errors import ValidationError
from clonestore.fields import MemoryChanges, MemoryCreate
from clonestore.records import Memory
from clonestore.repositories.owned import OwnedRepository
from clonestore.schema import check
from clonestore.vectors import METRICS

__all__ = ["METRICS", "MemoryRepository", "ScoredMemory"]


@attrs.frozen
class ScoredMemory:
    """A memory and its score against the query (see :data:`METRICS`)."""

    memory: Memory
    score: float


class MemoryRepository(OwnedRepository[Memory]):
    """A user's memories."""

    noun = "memory"

    if TYPE_CHECKING:  # the keywords each takes (clonestore.fields); the base class runs them

        def create(self, **fields: Unpack[MemoryCreate]) -> Memory: ...  # type: ignore[override]

        def update(  # type: ignore[override]
            self,
            id: str,
            /,
            expected_version: int | None = None,
            **changes: Unpack[MemoryChanges],
        ) -> Memory: ...

    def add(self, user_id: str, content: str, embedding: Sequence[float], **fields: Any) -> Memory:
        """Remember something about the user."""
        vector: Any = embedding  # checked as the column's (a list or a tuple), as create does
        return self.create(user_id=user_id, content=content, embedding=vector, **fields)

    def similar(
        self,
        user_id: str,
        embedding: Sequence[float],
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
        ``where`` adds lookups (``memory_type="preference"``); ``min_score``
        (cosine, ip) or ``max_distance`` (l2) drops weaker matches. ``limit``
        is at least 1 (0 is refused); a limit above the number of memories
        returns them all. With
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
        embedding: Sequence[float],
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
        if type(limit) is not int or limit < 1:
            raise ValidationError(f"must be a positive integer, got {limit!r}", field="limit")
        if type(approximate) is not bool:
            raise ValidationError("must be True or False", field="approximate")
        cutoff = self._cutoff(metric, min_score, max_distance)
        column = self.spec.column("embedding")
        query = check(column, embedding)
        if metric == "cosine" and not any(query):
            raise ValidationError("a zero vector has no cosine similarity", field="embedding")
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
