"""``store.cache``: the seed system's three caches, each on two levels."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from clonestore import ValidationError
from clonestore.spi import Row
from clonestore.spi_reference import copy_value
from clonestore_cache._levels import TwoLevelCache, cache_key
from clonestore_cache._tables import HASH_LENGTH, MAX_DIMENSIONS, MAX_RESPONSE
from clonestore_cache._values import check_json, check_text, check_vector

__all__ = ["Cache", "LLMResponse"]


@attrs.frozen(kw_only=True)
class LLMResponse:
    """A cached LLM response; ``hit_count`` counts the reads that found it."""

    response: str
    provider: str
    hit_count: int
    created_at: datetime
    expires_at: datetime


class Cache(TwoLevelCache):
    """The cache plugin's service, attached as ``store.cache``."""

    @property
    def max_dimensions(self) -> int:
        """The longest embedding kept: 65,536, or the store's shorter limit
        (``Store.max_vector_dimensions``, what its backend keeps)."""
        return min(MAX_DIMENSIONS, self._store.max_vector_dimensions or MAX_DIMENSIONS)

    # ------------------------------------------------------------------ embeddings

    def set_embedding(
        self,
        query_hash: str,
        embedding: Sequence[float],
        ttl: float | timedelta | None = None,
        *,
        model: str | None = None,
        user_id: str | None = None,
    ) -> None:
        """Keep ``embedding`` for ``query_hash`` for ``ttl`` seconds (default one hour),
        as float32 values (every clonestore vector is: see ``clonestore.vectors``).
        ``user_id`` marks it as that user's, for ``erase_user``."""
        self._keep(
            "embedding",
            (check_text("query_hash", query_hash, HASH_LENGTH),),
            {
                "embedding": check_vector("embedding", embedding, self.max_dimensions),
                "model": None if model is None else check_text("model", model, 200),
                "user_id": _user(user_id),
            },
            ttl,
        )

    def get_embedding(self, query_hash: str) -> list[float] | None:
        """The embedding kept for ``query_hash``, or None."""
        key = cache_key((check_text("query_hash", query_hash, HASH_LENGTH),))
        row = self._lookup("embedding", key)
        return None if row is None else list(row["embedding"])

    def get_or_compute_embedding(
        self,
        query_hash: str,
        compute: Callable[[], Sequence[float]],
        *,
        model: str | None = None,
        user_id: str | None = None,
        ttl: float | timedelta | None = None,
    ) -> list[float]:
        """The cached embedding, or ``compute()``'s, kept; concurrent misses compute once."""
        found = self.get_embedding(query_hash)
        if found is not None:
            return found

        def fill() -> list[float]:
            again = self._lookup("embedding", query_hash, counted=False)
            if again is not None:
                return list(again["embedding"])
            value = check_vector("embedding", compute(), self.max_dimensions)
            self.set_embedding(query_hash, value, model=model, user_id=user_id, ttl=ttl)
            return value

        return list(self._compute_once("embedding", query_hash, fill))

    # ------------------------------------------------------------------ vector search

    def set_vector_search_results(
        self,
        query_hash: str,
        user_id: str,
        results: Sequence[Any],
        ttl: float | timedelta | None = None,
    ) -> None:
        """Keep a user's vector-search results (a JSON list) for ``query_hash`` (default 30 min)."""
        if isinstance(results, (str, bytes, Mapping)) or not isinstance(results, Sequence):
            raise ValidationError("must be a list", field="results")
        self._keep(
            "vector_search",
            (check_text("query_hash", query_hash, HASH_LENGTH), _owner(user_id)),
            {"results": check_json("results", list(results))},
            ttl,
        )

    def get_vector_search_results(self, query_hash: str, user_id: str) -> list[Any] | None:
        """The results kept for this query and user, or None."""
        key = cache_key((check_text("query_hash", query_hash, HASH_LENGTH), _owner(user_id)))
        row = self._lookup("vector_search", key)
        return None if row is None else list(copy_value(row["results"]))

    def get_or_compute_vector_search_results(
        self,
        query_hash: str,
        user_id: str,
        compute: Callable[[], Sequence[Any]],
        *,
        ttl: float | timedelta | None = None,
    ) -> list[Any]:
        """Cached results, or ``compute()``'s, kept; concurrent misses compute once."""
        found = self.get_vector_search_results(query_hash, user_id)
        if found is not None:
            return found

        key = cache_key((query_hash, user_id))

        def fill() -> list[Any]:
            again = self._lookup("vector_search", key, counted=False)
            if again is not None:
                return list(again["results"])
            value = list(compute())
            self.set_vector_search_results(query_hash, user_id, value, ttl=ttl)
            return value

        return list(copy_value(self._compute_once("vector_search", key, fill)))

    # ------------------------------------------------------------------ LLM responses

    def set_llm_response(
        self,
        prompt_hash: str,
        response: str,
        provider: str,
        ttl: float | timedelta | None = None,
        *,
        user_id: str | None = None,
    ) -> None:
        """Keep an LLM response for ``prompt_hash`` for ``ttl`` seconds (default one
        hour), hit count 0."""
        self._keep_llm_response(prompt_hash, response, provider, user_id, ttl)

    def _keep_llm_response(
        self, prompt_hash: str, response: str, provider: str, user_id: Any, ttl: Any
    ) -> Row:
        return self._keep(
            "llm_response",
            (check_text("prompt_hash", prompt_hash, HASH_LENGTH),),
            {
                "response": check_text("response", response, MAX_RESPONSE, empty=True),
                "provider": check_text("provider", provider, 200),
                "hit_count": 0,
                "user_id": _user(user_id),
            },
            ttl,
        )

    def get_llm_response(self, prompt_hash: str) -> LLMResponse | None:
        """The response kept for ``prompt_hash`` (counting this hit), or None.

        Reading costs no write: hits are counted in process and added to the
        table's ``hit_count`` in batches (every 100 entries or 5 seconds, and by
        ``stats``, ``clean_expired``, ``flush_hit_counts`` and closing the
        store); the count returned includes this process's unwritten hits.
        """
        key = cache_key((check_text("prompt_hash", prompt_hash, HASH_LENGTH),))
        row = self._lookup("llm_response", key, self._count_l1_hit, on_l2_hit=self._count_l2_hit)
        if row is None:
            return None
        self._maybe_flush_hits()
        return _response(row)

    def _count_l1_hit(self, row: Row) -> Row:
        # Runs under the L1 lock: the cached row keeps the count seen in process.
        row["hit_count"] += 1
        with self._lock:
            self._pending_hits[row["id"]] = self._pending_hits.get(row["id"], 0) + 1
        return dict(row)

    def _count_l2_hit(self, row: Row) -> None:
        with self._lock:
            pending = self._pending_hits.get(row["id"], 0) + 1
            self._pending_hits[row["id"]] = pending
        row["hit_count"] += pending

    def get_or_compute_llm_response(
        self,
        prompt_hash: str,
        compute: Callable[[], tuple[str, str]],
        *,
        user_id: str | None = None,
        ttl: float | timedelta | None = None,
    ) -> LLMResponse:
        """The cached response, or ``compute()``'s ``(response, provider)``, kept;
        concurrent misses compute once."""
        found = self.get_llm_response(prompt_hash)
        if found is not None:
            return found

        def fill() -> LLMResponse:
            again = self._lookup("llm_response", prompt_hash, counted=False)
            if again is not None:
                return _response(again)
            response, provider = compute()
            return _response(self._keep_llm_response(prompt_hash, response, provider, user_id, ttl))

        return self._compute_once("llm_response", prompt_hash, fill)


def _user(user_id: Any) -> str | None:
    return None if user_id is None else _owner(user_id)


def _owner(user_id: Any) -> str:
    return check_text("user_id", user_id, 200)


def _response(row: Row) -> LLMResponse:
    return LLMResponse(
        response=row["response"],
        provider=row["provider"],
        hit_count=row["hit_count"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )
