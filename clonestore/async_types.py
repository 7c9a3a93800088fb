"""The types of the awaited API of :func:`clonestore.open_async`.

One protocol per repository (``store.users`` is an :class:`AsyncUserRepository`)
and per built-in service (``store.cache`` is an :class:`AsyncCacheService`): the
members of the synchronous class, each method an ``async def`` with the same
parameters and result. So ``await store.users.create(email=..., nmae=...)`` and
``await store.usres.count()`` are type errors under mypy --strict, as they are
with :func:`clonestore.open`.

Generated from the synchronous classes by ``tests/typing_async.py`` (``python
tests/typing_async.py`` rewrites it); ``tests/test_typing.py`` fails when the
two disagree. Do not edit by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, Unpack

from clonestore.fields import (
    DocumentChanges,
    DocumentCreate,
    FaceModelChanges,
    FaceModelCreate,
    MemoryChanges,
    MemoryCreate,
    SessionChanges,
    SessionCreate,
    SpecializationChanges,
    SpecializationCreate,
    TurnChanges,
    TurnCreate,
    UserChanges,
    UserCreate,
    VoiceModelChanges,
    VoiceModelCreate,
)
from clonestore.records import (
    Document,
    FaceModel,
    Memory,
    Session,
    Specialization,
    Turn,
    User,
    VoiceModel,
)
from clonestore.repositories.base import Page, Repository
from clonestore.repositories.memories import ScoredMemory
from clonestore.repositories.sessions import SessionStatistics, SessionWithTurns
from clonestore.services import Seconds

__all__ = [
    "AsyncAuditService",
    "AsyncCacheService",
    "AsyncDocumentRepository",
    "AsyncFaceModelRepository",
    "AsyncMemoryRepository",
    "AsyncRateLimitService",
    "AsyncSessionRepository",
    "AsyncSpecializationRepository",
    "AsyncTurnRepository",
    "AsyncUserRepository",
    "AsyncVoiceModelRepository",
]


class AsyncUserRepository(Protocol):
    """``store.users`` under ``open_async``: the methods of
    :class:`clonestore.repositories.users.UserRepository`, awaited."""

    async def create(self, **fields: Unpack[UserCreate]) -> User: ...

    async def update(
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[UserChanges]
    ) -> User: ...

    noun: str

    owner_column: str

    async def find_by_email(self, email: str) -> User | None: ...

    async def delete(self, id: str) -> None: ...

    async def restore(self, id: str) -> User: ...

    async def hard_delete(self, id: str) -> None: ...

    async def export(self, id: str) -> dict[str, Any]: ...

    async def erase(self, id: str) -> dict[str, int]: ...

    owner: str | None

    @property
    def repos(self) -> Mapping[str, Repository[Any]]: ...

    initial_values: Mapping[str, tuple[Any, str]]

    async def get(self, id: str) -> User: ...

    async def get_or_none(self, id: str) -> User | None: ...

    async def find_one(self, **where: Any) -> User | None: ...

    async def find_many(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_deleted: bool = False,
        **lookups: Any,
    ) -> list[User]: ...

    async def page(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        size: int = 50,
        cursor: str | None = None,
        with_deleted: bool = False,
    ) -> Page[User]: ...

    async def count(
        self, where: Mapping[str, Any] | None = None, with_deleted: bool = False, **lookups: Any
    ) -> int: ...

    async def exists(self, **where: Any) -> bool: ...

    has_references: bool

    async def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[User]: ...

    async def update_many(
        self, where: Mapping[str, Any] | None, /, *, all: bool = False, **changes: Any
    ) -> int: ...


class AsyncVoiceModelRepository(Protocol):
    """``store.voice_models`` under ``open_async``: the methods of
    :class:`clonestore.repositories.models.VoiceModelRepository`, awaited."""

    async def create(self, **fields: Unpack[VoiceModelCreate]) -> VoiceModel: ...

    async def update(
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[VoiceModelChanges]
    ) -> VoiceModel: ...

    noun: str

    async def activate(self, id: str) -> VoiceModel: ...

    async def deactivate(self, id: str) -> VoiceModel: ...

    async def active_for(self, user_id: str) -> VoiceModel | None: ...

    has_references: bool

    async def for_owner(self, user_id: str, **where: Any) -> list[VoiceModel]: ...

    owner_column: str

    owner: str | None

    @property
    def repos(self) -> Mapping[str, Repository[Any]]: ...

    initial_values: Mapping[str, tuple[Any, str]]

    async def get(self, id: str) -> VoiceModel: ...

    async def get_or_none(self, id: str) -> VoiceModel | None: ...

    async def find_one(self, **where: Any) -> VoiceModel | None: ...

    async def find_many(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_deleted: bool = False,
        **lookups: Any,
    ) -> list[VoiceModel]: ...

    async def page(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        size: int = 50,
        cursor: str | None = None,
        with_deleted: bool = False,
    ) -> Page[VoiceModel]: ...

    async def count(
        self, where: Mapping[str, Any] | None = None, with_deleted: bool = False, **lookups: Any
    ) -> int: ...

    async def exists(self, **where: Any) -> bool: ...

    async def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[VoiceModel]: ...

    async def update_many(
        self, where: Mapping[str, Any] | None, /, *, all: bool = False, **changes: Any
    ) -> int: ...

    async def delete(self, id: str) -> None: ...

    async def restore(self, id: str) -> VoiceModel: ...

    async def hard_delete(self, id: str) -> None: ...


class AsyncFaceModelRepository(Protocol):
    """``store.face_models`` under ``open_async``: the methods of
    :class:`clonestore.repositories.models.FaceModelRepository`, awaited."""

    async def create(self, **fields: Unpack[FaceModelCreate]) -> FaceModel: ...

    async def update(
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[FaceModelChanges]
    ) -> FaceModel: ...

    noun: str

    async def activate(self, id: str) -> FaceModel: ...

    async def deactivate(self, id: str) -> FaceModel: ...

    async def active_for(self, user_id: str) -> FaceModel | None: ...

    has_references: bool

    async def for_owner(self, user_id: str, **where: Any) -> list[FaceModel]: ...

    owner_column: str

    owner: str | None

    @property
    def repos(self) -> Mapping[str, Repository[Any]]: ...

    initial_values: Mapping[str, tuple[Any, str]]

    async def get(self, id: str) -> FaceModel: ...

    async def get_or_none(self, id: str) -> FaceModel | None: ...

    async def find_one(self, **where: Any) -> FaceModel | None: ...

    async def find_many(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_deleted: bool = False,
        **lookups: Any,
    ) -> list[FaceModel]: ...

    async def page(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        size: int = 50,
        cursor: str | None = None,
        with_deleted: bool = False,
    ) -> Page[FaceModel]: ...

    async def count(
        self, where: Mapping[str, Any] | None = None, with_deleted: bool = False, **lookups: Any
    ) -> int: ...

    async def exists(self, **where: Any) -> bool: ...

    async def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[FaceModel]: ...

    async def update_many(
        self, where: Mapping[str, Any] | None, /, *, all: bool = False, **changes: Any
    ) -> int: ...

    async def delete(self, id: str) -> None: ...

    async def restore(self, id: str) -> FaceModel: ...

    async def hard_delete(self, id: str) -> None: ...


class AsyncSessionRepository(Protocol):
    """``store.sessions`` under ``open_async``: the methods of
    :class:`clonestore.repositories.sessions.SessionRepository`, awaited."""

    async def create(self, **fields: Unpack[SessionCreate]) -> Session: ...

    async def update(
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[SessionChanges]
    ) -> Session: ...

    noun: str

    async def update_state(self, id: str, state: str) -> Session: ...

    async def add_turn(self, session_id: str, **fields: Any) -> Turn: ...

    async def end(self, id: str) -> Session: ...

    async def get_with_turns(self, id: str) -> SessionWithTurns: ...

    async def user_statistics(
        self, user_id: str, since: datetime | None = None
    ) -> SessionStatistics: ...

    async def hard_delete(self, id: str) -> None: ...

    has_references: bool

    async def for_owner(self, user_id: str, **where: Any) -> list[Session]: ...

    owner_column: str

    owner: str | None

    @property
    def repos(self) -> Mapping[str, Repository[Any]]: ...

    initial_values: Mapping[str, tuple[Any, str]]

    async def get(self, id: str) -> Session: ...

    async def get_or_none(self, id: str) -> Session | None: ...

    async def find_one(self, **where: Any) -> Session | None: ...

    async def find_many(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_deleted: bool = False,
        **lookups: Any,
    ) -> list[Session]: ...

    async def page(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        size: int = 50,
        cursor: str | None = None,
        with_deleted: bool = False,
    ) -> Page[Session]: ...

    async def count(
        self, where: Mapping[str, Any] | None = None, with_deleted: bool = False, **lookups: Any
    ) -> int: ...

    async def exists(self, **where: Any) -> bool: ...

    async def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[Session]: ...

    async def update_many(
        self, where: Mapping[str, Any] | None, /, *, all: bool = False, **changes: Any
    ) -> int: ...

    async def delete(self, id: str) -> None: ...

    async def restore(self, id: str) -> Session: ...


class AsyncTurnRepository(Protocol):
    """``store.turns`` under ``open_async``: the methods of
    :class:`clonestore.repositories.sessions.TurnRepository`, awaited."""

    async def update(
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[TurnChanges]
    ) -> Turn: ...

    noun: str

    async def create(self, **typed: Unpack[TurnCreate]) -> Turn: ...

    async def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[Turn]: ...

    async def hard_delete(self, id: str) -> None: ...

    has_references: bool

    async def for_owner(self, user_id: str, **where: Any) -> list[Turn]: ...

    owner_column: str

    owner: str | None

    @property
    def repos(self) -> Mapping[str, Repository[Any]]: ...

    initial_values: Mapping[str, tuple[Any, str]]

    async def get(self, id: str) -> Turn: ...

    async def get_or_none(self, id: str) -> Turn | None: ...

    async def find_one(self, **where: Any) -> Turn | None: ...

    async def find_many(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_deleted: bool = False,
        **lookups: Any,
    ) -> list[Turn]: ...

    async def page(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        size: int = 50,
        cursor: str | None = None,
        with_deleted: bool = False,
    ) -> Page[Turn]: ...

    async def count(
        self, where: Mapping[str, Any] | None = None, with_deleted: bool = False, **lookups: Any
    ) -> int: ...

    async def exists(self, **where: Any) -> bool: ...

    async def update_many(
        self, where: Mapping[str, Any] | None, /, *, all: bool = False, **changes: Any
    ) -> int: ...

    async def delete(self, id: str) -> None: ...

    async def restore(self, id: str) -> Turn: ...


class AsyncDocumentRepository(Protocol):
    """``store.documents`` under ``open_async``: the methods of
    :class:`clonestore.repositories.documents.DocumentRepository`, awaited."""

    async def create(self, **fields: Unpack[DocumentCreate]) -> Document: ...

    async def update(
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[DocumentChanges]
    ) -> Document: ...

    noun: str

    async def update_status(
        self,
        id: str,
        status: str,
        *,
        error_message: str | None = None,
        chunk_count: int | None = None,
    ) -> Document: ...

    async def set_vector_ids(self, id: str, vector_ids: Sequence[str]) -> Document: ...

    async def search_by_tags(
        self, user_id: str, tags: Sequence[str], match: str = "any"
    ) -> list[Document]: ...

    has_references: bool

    async def for_owner(self, user_id: str, **where: Any) -> list[Document]: ...

    owner_column: str

    owner: str | None

    @property
    def repos(self) -> Mapping[str, Repository[Any]]: ...

    initial_values: Mapping[str, tuple[Any, str]]

    async def get(self, id: str) -> Document: ...

    async def get_or_none(self, id: str) -> Document | None: ...

    async def find_one(self, **where: Any) -> Document | None: ...

    async def find_many(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_deleted: bool = False,
        **lookups: Any,
    ) -> list[Document]: ...

    async def page(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        size: int = 50,
        cursor: str | None = None,
        with_deleted: bool = False,
    ) -> Page[Document]: ...

    async def count(
        self, where: Mapping[str, Any] | None = None, with_deleted: bool = False, **lookups: Any
    ) -> int: ...

    async def exists(self, **where: Any) -> bool: ...

    async def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[Document]: ...

    async def update_many(
        self, where: Mapping[str, Any] | None, /, *, all: bool = False, **changes: Any
    ) -> int: ...

    async def delete(self, id: str) -> None: ...

    async def restore(self, id: str) -> Document: ...

    async def hard_delete(self, id: str) -> None: ...


class AsyncMemoryRepository(Protocol):
    """``store.memories`` under ``open_async``: the methods of
    :class:`clonestore.repositories.memories.MemoryRepository`, awaited."""

    async def create(self, **fields: Unpack[MemoryCreate]) -> Memory: ...

    async def update(
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[MemoryChanges]
    ) -> Memory: ...

    noun: str

    async def add(
        self, user_id: str, content: str, embedding: Sequence[float], **fields: Any
    ) -> Memory: ...

    async def similar(
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
    ) -> list[ScoredMemory]: ...

    async def nearest(
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
    ) -> list[ScoredMemory]: ...

    has_references: bool

    async def for_owner(self, user_id: str, **where: Any) -> list[Memory]: ...

    owner_column: str

    owner: str | None

    @property
    def repos(self) -> Mapping[str, Repository[Any]]: ...

    initial_values: Mapping[str, tuple[Any, str]]

    async def get(self, id: str) -> Memory: ...

    async def get_or_none(self, id: str) -> Memory | None: ...

    async def find_one(self, **where: Any) -> Memory | None: ...

    async def find_many(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_deleted: bool = False,
        **lookups: Any,
    ) -> list[Memory]: ...

    async def page(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        size: int = 50,
        cursor: str | None = None,
        with_deleted: bool = False,
    ) -> Page[Memory]: ...

    async def count(
        self, where: Mapping[str, Any] | None = None, with_deleted: bool = False, **lookups: Any
    ) -> int: ...

    async def exists(self, **where: Any) -> bool: ...

    async def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[Memory]: ...

    async def update_many(
        self, where: Mapping[str, Any] | None, /, *, all: bool = False, **changes: Any
    ) -> int: ...

    async def delete(self, id: str) -> None: ...

    async def restore(self, id: str) -> Memory: ...

    async def hard_delete(self, id: str) -> None: ...


class AsyncSpecializationRepository(Protocol):
    """``store.specializations`` under ``open_async``: the methods of
    :class:`clonestore.repositories.specializations.SpecializationRepository`, awaited."""

    async def create(self, **fields: Unpack[SpecializationCreate]) -> Specialization: ...

    async def update(
        self,
        id: str,
        /,
        expected_version: int | None = None,
        **changes: Unpack[SpecializationChanges],
    ) -> Specialization: ...

    noun: str

    async def find_by_name(self, name: str) -> Specialization | None: ...

    owner_column: str

    owner: str | None

    @property
    def repos(self) -> Mapping[str, Repository[Any]]: ...

    initial_values: Mapping[str, tuple[Any, str]]

    async def get(self, id: str) -> Specialization: ...

    async def get_or_none(self, id: str) -> Specialization | None: ...

    async def find_one(self, **where: Any) -> Specialization | None: ...

    async def find_many(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_deleted: bool = False,
        **lookups: Any,
    ) -> list[Specialization]: ...

    async def page(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        size: int = 50,
        cursor: str | None = None,
        with_deleted: bool = False,
    ) -> Page[Specialization]: ...

    async def count(
        self, where: Mapping[str, Any] | None = None, with_deleted: bool = False, **lookups: Any
    ) -> int: ...

    async def exists(self, **where: Any) -> bool: ...

    has_references: bool

    async def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[Specialization]: ...

    async def update_many(
        self, where: Mapping[str, Any] | None, /, *, all: bool = False, **changes: Any
    ) -> int: ...

    async def delete(self, id: str) -> None: ...

    async def restore(self, id: str) -> Specialization: ...

    async def hard_delete(self, id: str) -> None: ...


class AsyncCacheService(Protocol):
    """``store.cache`` under ``open_async``: the methods of
    :class:`clonestore.services.CacheService`, awaited."""

    async def set_embedding(
        self,
        query_hash: str,
        embedding: Sequence[float],
        ttl: Seconds = None,
        *,
        model: str | None = None,
        user_id: str | None = None,
    ) -> None: ...

    async def get_embedding(self, query_hash: str) -> list[float] | None: ...

    async def get_or_compute_embedding(
        self,
        query_hash: str,
        compute: Callable[[], Sequence[float]],
        *,
        model: str | None = None,
        user_id: str | None = None,
        ttl: Seconds = None,
    ) -> list[float]: ...

    async def set_vector_search_results(
        self, query_hash: str, user_id: str, results: Sequence[Any], ttl: Seconds = None
    ) -> None: ...

    async def get_vector_search_results(
        self, query_hash: str, user_id: str
    ) -> list[Any] | None: ...

    async def get_or_compute_vector_search_results(
        self,
        query_hash: str,
        user_id: str,
        compute: Callable[[], Sequence[Any]],
        *,
        ttl: Seconds = None,
    ) -> list[Any]: ...

    async def set_llm_response(
        self,
        prompt_hash: str,
        response: str,
        provider: str,
        ttl: Seconds = None,
        *,
        user_id: str | None = None,
    ) -> None: ...

    async def get_llm_response(self, prompt_hash: str) -> Any: ...

    async def get_or_compute_llm_response(
        self,
        prompt_hash: str,
        compute: Callable[[], tuple[str, str]],
        *,
        user_id: str | None = None,
        ttl: Seconds = None,
    ) -> Any: ...

    async def flush_hit_counts(self) -> int: ...

    async def clean_expired(self) -> dict[str, int]: ...

    async def clean_all_expired_cache(self) -> dict[str, int]: ...

    async def stats(self) -> dict[str, Any]: ...

    async def invalidate(self, table: str | None = None, id: str | None = None) -> None: ...

    async def export_user(self, user_id: str) -> dict[str, Any]: ...

    async def erase_user(self, user_id: str) -> None: ...


class AsyncRateLimitService(Protocol):
    """``store.ratelimit`` under ``open_async``: the methods of
    :class:`clonestore.services.RateLimitService`, awaited."""

    @property
    def config(self) -> Any: ...

    async def configure(
        self,
        *,
        tiers: Mapping[str, Mapping[str, Any]] | None = None,
        default_tier: str | None = None,
        enforce: Mapping[str, str] | None = None,
        tier_of: Callable[[str], str | None] | None = None,
    ) -> None: ...

    async def tier_of(self, user_id: str) -> str: ...

    async def policy_for(self, user_id: str, endpoint: str, tier: str | None = None) -> Any: ...

    async def check_and_increment(
        self,
        user_id: str,
        endpoint: str,
        limit: int | None = None,
        window_seconds: int | None = None,
        *,
        algorithm: str | None = None,
        tier: str | None = None,
    ) -> Any: ...

    async def status(
        self,
        user_id: str,
        endpoint: str,
        limit: int | None = None,
        window_seconds: int | None = None,
        *,
        algorithm: str | None = None,
        tier: str | None = None,
    ) -> Any: ...

    async def get_status(
        self, user_id: str, endpoint: str, window_seconds: int, limit: int | None = None
    ) -> Any: ...

    async def cleanup(self, older_than: timedelta | float = timedelta(days=1)) -> int: ...

    async def usage(self, user_id: str) -> Any: ...

    async def export_user(self, user_id: str) -> dict[str, Any]: ...

    async def erase_user(self, user_id: str) -> None: ...


class AsyncAuditService(Protocol):
    """``store.audit`` under ``open_async``: the methods of
    :class:`clonestore.services.AuditService`, awaited."""

    @property
    def guarded(self) -> bool: ...

    async def log(
        self,
        action: str,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        result: str = "success",
        details: Any = None,
        actor_id: str | None = None,
        subject_id: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
        error: str | None = None,
        **original: Any,
    ) -> Any: ...

    async def find(
        self,
        *,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        actor_id: str | None = None,
        subject_id: str | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        result: str | None = None,
        request_id: str | None = None,
    ) -> list[Any]: ...

    async def find_by_user(
        self, user_id: str, *, limit: int = 100, offset: int = 0, since: datetime | None = None
    ) -> list[Any]: ...

    async def find_by_user_id(
        self, user_id: str, *, limit: int = 100, offset: int = 0, since: datetime | None = None
    ) -> list[Any]: ...

    async def user_statistics(self, user_id: str, days: int = 30) -> Any: ...

    async def purge(self, older_than_days: float = 90) -> int: ...

    async def verify(self) -> Any: ...

    async def head(self) -> tuple[int, str]: ...

    async def export_user(self, user_id: str) -> dict[str, Any]: ...

    async def erase_user(self, user_id: str) -> int: ...
