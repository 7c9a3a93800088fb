"""Memories a clone keeps about its person, recalled by exact vector similarity."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from clonestore.errors import ValidationError
from clonestore.records import Memory
from clonestore.repositories.owned import OwnedRepository
from clonestore.schema import check

__all__ = ["METRICS", "MemoryRepository", "ScoredMemory"]

#: ``cosine``: similarity in [-1, 1], best first. ``l2``: Euclidean distance, nearest first.
METRICS = ("cosine", "l2")


@attrs.frozen
class ScoredMemory:
    """A memory and its score against the query (see :data:`METRICS`)."""

    memory: Memory
    score: float


def _norm(vector: Sequence[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vector))


class MemoryRepository(OwnedRepository[Memory]):
    """A user's memories."""

    noun = "memory"

    def add(self, user_id: str, content: str, embedding: Sequence[float], **fields: Any) -> Memory:
        """Remember something about the user."""
        return self.create(user_id=user_id, content=content, embedding=embedding, **fields)

    def similar(
        self,
        user_id: str,
        embedding: Sequence[float],
        limit: int = 5,
        metric: str = "cosine",
    ) -> list[ScoredMemory]:
        """The user's memories most similar to ``embedding``, computed exactly.

        Only memories whose embedding has the query's dimension are compared;
        memories with a zero embedding have no cosine similarity and are skipped.
        Ties are broken by id.
        """
        if metric not in METRICS:
            raise ValidationError(f"must be one of {', '.join(METRICS)}", field="metric")
        if type(limit) is not int or limit < 1:
            raise ValidationError(f"must be a positive integer, got {limit!r}", field="limit")
        query = check(self.spec.column("embedding"), embedding)
        query_norm = _norm(query)
        if metric == "cosine" and query_norm == 0.0:
            raise ValidationError("a zero vector has no cosine similarity", field="embedding")
        scored: list[ScoredMemory] = []
        for memory in self.find_many(where={"user_id": self._check_owner(user_id)}):
            vector = memory.embedding
            if len(vector) != len(query):
                continue
            if metric == "cosine":
                norm = _norm(vector)
                if norm == 0.0:
                    continue
                dot = math.fsum(a * b for a, b in zip(query, vector, strict=True))
                scored.append(ScoredMemory(memory, dot / (query_norm * norm)))
            else:
                distance = math.sqrt(
                    math.fsum((a - b) ** 2 for a, b in zip(query, vector, strict=True))
                )
                scored.append(ScoredMemory(memory, distance))
        best_first = -1.0 if metric == "cosine" else 1.0
        scored.sort(key=lambda s: (best_first * s.score, s.memory.id))
        return scored[:limit]
