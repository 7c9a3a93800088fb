"""The types of the awaited API of :func:`clonestore.open_async`.

One protocol per repository (``store.users`` is an :class:`AsyncUserRepository`)
and per built-in service (``store.cache`` is an :class:`AsyncCacheService`): the
members of the synchronous class, each method an ``async def`` with the same
parameters, result and docstring. The repositories' shared methods are those of the
generic :class:`AsyncRepository`; each entity's protocol adds its own. So ``await
store.users.create(email=..., nmae=...)`` and ``await store.usres.count()`` are type
errors under mypy --strict, as they are with :func:`clonestore.open`.

Generated from the synchronous classes by ``tools/generate_async_types.py`` (``python
tools/generate_async_types.py`` rewrites it); ``tests/test_typing.py`` fails when the
two disagree. Do not edit by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, Unpack

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
from clonestore.repositories.base import Page, Scored
from clonestore.repositories.memories import ScoredMemory
from clonestore.repositories.sessions import SessionStatistics, SessionWithTurns
from clonestore.schema import VectorLike
from clonestore.services import Seconds

__all__ = [
    "AsyncAuditService",
    "AsyncCacheService",
    "AsyncCatalogues",
    "AsyncCloneModelRepository",
    "AsyncDocumentRepository",
    "AsyncFaceModelRepository",
    "AsyncMemoryRepository",
    "AsyncOwnedRepository",
    "AsyncRateLimitService",
    "AsyncRepositories",
    "AsyncRepository",
    "AsyncSessionRepository",
    "AsyncSpecializationRepository",
    "AsyncTurnRepository",
    "AsyncUserRepository",
    "AsyncVoiceModelRepository",
]

R = TypeVar("R")
M = TypeVar("M", VoiceModel, FaceModel)


class AsyncRepository(Protocol[R]):
    """Under ``open_async``: the methods of
    :class:`clonestore.repositories.base.Repository`, awaited,
    that every protocol extending this one has."""

    async def get(self, id: str) -> R:
        """The live record with this id; :class:`NotFound` otherwise."""

    async def get_or_none(self, id: str) -> R | None:
        """The live record with this id, or None."""

    async def find_one(self, **where: Any) -> R | None:
        """The first live record (in creation order) matching the lookups, or None."""

    async def find_many(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        with_deleted: bool = False,
        **lookups: Any,
    ) -> list[R]:
        """Records matching ``where`` and keyword ``lookups`` (as ``find_one`` takes them),
        ordered (``"-created_at"``; ties by id), sliced.

        ``limit`` and ``offset`` are integers from 0 to 2**63 - 1 on every backend."""

    async def page(
        self,
        where: Mapping[str, Any] | None = None,
        order_by: str | Sequence[str] | None = None,
        size: int = 50,
        cursor: str | None = None,
        with_deleted: bool = False,
    ) -> Page[R]:
        """One keyset page; pass ``next_cursor`` back to continue after it."""

    async def count(
        self, where: Mapping[str, Any] | None = None, with_deleted: bool = False, **lookups: Any
    ) -> int:
        """How many records match ``where`` and keyword ``lookups``."""

    async def exists(self, **where: Any) -> bool:
        """Whether any live record matches the lookups."""

    async def search(
        self, text: str, *, limit: int = 10, where: Mapping[str, Any] | None = None
    ) -> list[Scored[R]]:
        """The live records matching ``where`` whose :attr:`search_fields` hold every word
        and quoted phrase of ``text``, best first by BM25, ties by id; at most ``limit``.

        The same records in the same order, with the same scores, on every backend: the
        tokenizer, the match set and the BM25 statistics (those of the rows matching
        ``where``, in this view) are :mod:`clonestore.text`'s."""

    async def create(self, **fields: Any) -> R:
        """Validate and store a new record; returns it with its id and timestamps."""

    async def create_many(self, rows: Iterable[Mapping[str, Any]]) -> list[R]:
        """Validate every row, then store them all or none."""

    async def upsert(self, id: str, /, **fields: Any) -> tuple[R, bool]:
        """Create the record with this id, or replace the one that has it, in one atomic
        step; returns the record and whether it was created.

        ``fields`` are what ``create`` takes (without ``id``). A replaced record gets
        every one of them, and the default of each field not given, as ``create``
        would; it keeps its id, ``created_at`` (unless given) and what only domain
        operations change (a model's ``is_active``, a session's state and totals, a
        document's status...), its ``version`` goes up by one and ``updated_at`` is
        now (unless given). A soft-deleted record with the id is replaced the same
        way and is live again. Plugins see one write, action ``<noun>.upsert``.

        :raises AlreadyExists: the new values clash with another live record's unique
            values, or the id belongs to another user's record; nothing changes.
        :raises ValidationError: invalid fields, as for ``create``; nothing changes."""

    async def update(self, id: str, /, expected_version: int | None = None, **changes: Any) -> R:
        """Change fields of a live record, atomically; returns the new record.

        With ``expected_version`` the change applies only if the record is still
        at that version, else :class:`Conflict`. Fields set by clonestore (``id``,
        ``version``...) are refused with :class:`ValidationError`."""

    async def update_many(
        self, where: Mapping[str, Any] | None, /, *, all: bool = False, **changes: Any
    ) -> int:
        """Apply the same changes to every live record matching ``where``; how many changed.

        An empty ``where`` (None or ``{}``) would change every row: it is refused
        unless ``all=True`` says so."""

    async def delete(self, id: str) -> None:
        """Soft-delete (hide) the record where the entity supports it; else remove it."""

    async def restore(self, id: str) -> R:
        """Bring back a soft-deleted record; :class:`AlreadyExists` if its unique
        values were taken meanwhile."""

    async def hard_delete(self, id: str) -> None:
        """Remove the record for good, deleted or not."""


class AsyncUserRepository(AsyncRepository[User], Protocol):
    """``store.users`` under ``open_async``: the methods of
    :class:`clonestore.repositories.users.UserRepository`, awaited."""

    async def create(  # type: ignore[override]
        self, **fields: Unpack[UserCreate]
    ) -> User:
        """Validate and store a new record; returns it with its id and timestamps."""

    async def update(  # type: ignore[override]
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[UserChanges]
    ) -> User:
        """Change fields of a live record, atomically; returns the new record.

        With ``expected_version`` the change applies only if the record is still
        at that version, else :class:`Conflict`. Fields set by clonestore (``id``,
        ``version``...) are refused with :class:`ValidationError`."""

    async def find_by_email(self, email: str) -> User | None:
        """The live user with this email, ignoring case; None if there is none."""

    async def export(self, id: str) -> dict[str, Any]:
        """Everything about the user (deleted or not), deleted rows and plugins'
        sections (``clonestore_export_user``) included, as JSON-ready data.

        This is ``store.export_user``."""

    async def erase(self, id: str) -> dict[str, int]:
        """Remove the user (deleted or not) and every row about them, plugins' first
        (``clonestore_erase_user``), in one transaction; rows removed per table.

        This is ``store.erase_user``, the right to be forgotten."""


class AsyncOwnedRepository(AsyncRepository[R], Protocol[R]):
    """Under ``open_async``: the methods of
    :class:`clonestore.repositories.owned.OwnedRepository`, awaited,
    that every protocol extending this one has."""

    async def for_owner(self, user_id: str, **where: Any) -> list[R]:
        """The owner's live records, in creation order."""


class AsyncCloneModelRepository(AsyncOwnedRepository[M], Protocol[M]):
    """Under ``open_async``: the methods of
    :class:`clonestore.repositories.models.CloneModelRepository`, awaited,
    that every protocol extending this one has."""

    async def activate(self, id: str) -> M:
        """Make this model the user's only active one, atomically.

        The switch happens in one transaction, and a unique index on the active
        model per user means no reader ever sees two active models."""

    async def deactivate(self, id: str) -> M:
        """Make this model inactive (the user then has no active model of this kind)."""

    async def active_for(self, user_id: str) -> M | None:
        """The user's active model, or None."""


class AsyncVoiceModelRepository(AsyncCloneModelRepository[VoiceModel], Protocol):
    """``store.voice_models`` under ``open_async``: the methods of
    :class:`clonestore.repositories.models.VoiceModelRepository`, awaited."""

    async def create(  # type: ignore[override]
        self, **fields: Unpack[VoiceModelCreate]
    ) -> VoiceModel:
        """Validate and store a new record; returns it with its id and timestamps."""

    async def update(  # type: ignore[override]
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[VoiceModelChanges]
    ) -> VoiceModel:
        """Change fields of a live record, atomically; returns the new record.

        With ``expected_version`` the change applies only if the record is still
        at that version, else :class:`Conflict`. Fields set by clonestore (``id``,
        ``version``...) are refused with :class:`ValidationError`."""


class AsyncFaceModelRepository(AsyncCloneModelRepository[FaceModel], Protocol):
    """``store.face_models`` under ``open_async``: the methods of
    :class:`clonestore.repositories.models.FaceModelRepository`, awaited."""

    async def create(  # type: ignore[override]
        self, **fields: Unpack[FaceModelCreate]
    ) -> FaceModel:
        """Validate and store a new record; returns it with its id and timestamps."""

    async def update(  # type: ignore[override]
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[FaceModelChanges]
    ) -> FaceModel:
        """Change fields of a live record, atomically; returns the new record.

        With ``expected_version`` the change applies only if the record is still
        at that version, else :class:`Conflict`. Fields set by clonestore (``id``,
        ``version``...) are refused with :class:`ValidationError`."""


class AsyncSessionRepository(AsyncOwnedRepository[Session], Protocol):
    """``store.sessions`` under ``open_async``: the methods of
    :class:`clonestore.repositories.sessions.SessionRepository`, awaited."""

    async def create(  # type: ignore[override]
        self, **fields: Unpack[SessionCreate]
    ) -> Session:
        """Validate and store a new record; returns it with its id and timestamps."""

    async def update(  # type: ignore[override]
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[SessionChanges]
    ) -> Session:
        """Change fields of a live record, atomically; returns the new record.

        With ``expected_version`` the change applies only if the record is still
        at that version, else :class:`Conflict`. Fields set by clonestore (``id``,
        ``version``...) are refused with :class:`ValidationError`."""

    async def update_state(self, id: str, state: str) -> Session:
        """Move the session to ``state``; :class:`InvalidTransition` if the machine forbids it."""

    async def add_turn(self, session_id: str, **fields: Any) -> Turn:
        """Record a turn and update the session's totals in one transaction.

        ``total_turns`` grows by one, ``total_latency_ms`` by the turn's latency
        (the sum of its four stages) and ``total_cost`` by its exact cost. A turn
        is never older than its session: a ``created_at`` (given on import) before
        the session's is a :class:`ValidationError` naming ``created_at``."""

    async def end(self, id: str) -> Session:
        """End the session (``ended_at`` set); ending twice is an :class:`InvalidTransition`."""

    async def get_with_turns(self, id: str) -> SessionWithTurns:
        """The session and its turns in order."""

    async def user_statistics(
        self, user_id: str, since: datetime | None = None
    ) -> SessionStatistics:
        """Totals over the user's sessions (started at or after ``since``).

        Without ``since``, one row of ``session_totals`` (the ended sessions) plus
        the user's open sessions: its cost does not grow with the user's history.
        With ``since``, summed over the sessions started since then."""


class AsyncTurnRepository(AsyncOwnedRepository[Turn], Protocol):
    """``store.turns`` under ``open_async``: the methods of
    :class:`clonestore.repositories.sessions.TurnRepository`, awaited."""

    async def create(  # type: ignore[override]
        self, **typed: Unpack[TurnCreate]
    ) -> Turn:
        """Same as ``sessions.add_turn(session_id, **fields)``."""

    async def update(  # type: ignore[override]
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[TurnChanges]
    ) -> Turn:
        """Change fields of a live record, atomically; returns the new record.

        With ``expected_version`` the change applies only if the record is still
        at that version, else :class:`Conflict`. Fields set by clonestore (``id``,
        ``version``...) are refused with :class:`ValidationError`."""


class AsyncDocumentRepository(AsyncOwnedRepository[Document], Protocol):
    """``store.documents`` under ``open_async``: the methods of
    :class:`clonestore.repositories.documents.DocumentRepository`, awaited."""

    async def create(  # type: ignore[override]
        self, **fields: Unpack[DocumentCreate]
    ) -> Document:
        """Validate and store a new record; returns it with its id and timestamps."""

    async def update(  # type: ignore[override]
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[DocumentChanges]
    ) -> Document:
        """Change fields of a live record, atomically; returns the new record.

        With ``expected_version`` the change applies only if the record is still
        at that version, else :class:`Conflict`. Fields set by clonestore (``id``,
        ``version``...) are refused with :class:`ValidationError`."""

    async def update_status(
        self,
        id: str,
        status: str,
        *,
        error_message: str | None = None,
        chunk_count: int | None = None,
    ) -> Document:
        """Move the document through pending -> processing -> completed | failed.

        ``completed`` sets ``processed_at`` (and ``chunk_count`` if given);
        ``failed`` keeps ``error_message``; ``processing`` (a retry) clears it."""

    async def set_vector_ids(self, id: str, vector_ids: Sequence[str]) -> Document:
        """Replace the ids of the document's vectors in the vector store."""

    async def search_by_tags(
        self, user_id: str, tags: Sequence[str], match: str = "any"
    ) -> list[Document]:
        """The user's documents with any (``match="any"``) or all (``"all"``) of ``tags``."""

    async def recall(
        self,
        user_id: str,
        *,
        text: str | None = None,
        ranked: Sequence[str] | None = None,
        limit: int = 10,
        where: Mapping[str, Any] | None = None,
        depth: int = 50,
    ) -> list[Scored[Document]]:
        """The user's live documents best for ``text`` and/or ``ranked``: the text
        search's ranking (its best ``depth``, at least ``limit``) fused with ``ranked``,
        document ids best first as your vector store found them through the documents'
        ``vector_ids`` (ids not among the user's live documents matching ``where`` are
        left out), by reciprocal rank fusion (:func:`clonestore.text.fuse`, ``k`` = 60),
        best first, ties by id. The score is the fused one."""


class AsyncMemoryRepository(AsyncOwnedRepository[Memory], Protocol):
    """``store.memories`` under ``open_async``: the methods of
    :class:`clonestore.repositories.memories.MemoryRepository`, awaited."""

    async def create(  # type: ignore[override]
        self, **fields: Unpack[MemoryCreate]
    ) -> Memory:
        """Validate and store a new record; returns it with its id and timestamps."""

    async def update(  # type: ignore[override]
        self, id: str, /, expected_version: int | None = None, **changes: Unpack[MemoryChanges]
    ) -> Memory:
        """Change fields of a live record, atomically; returns the new record.

        With ``expected_version`` the change applies only if the record is still
        at that version, else :class:`Conflict`. Fields set by clonestore (``id``,
        ``version``...) are refused with :class:`ValidationError`."""

    async def add(
        self, user_id: str, content: str, embedding: VectorLike | None = None, **fields: Any
    ) -> Memory:
        """Remember something about the user (without an embedding, it is not recalled by
        ``similar``)."""

    async def similar(
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
        matches may be missing (scores stay exact)."""

    async def nearest(
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

    async def recall(
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
        the fused one. The same on every backend, as both rankings are."""


class AsyncSpecializationRepository(AsyncRepository[Specialization], Protocol):
    """``store.specializations`` under ``open_async``: the methods of
    :class:`clonestore.repositories.specializations.SpecializationRepository`, awaited."""

    async def create(  # type: ignore[override]
        self, **fields: Unpack[SpecializationCreate]
    ) -> Specialization:
        """Validate and store a new record; returns it with its id and timestamps."""

    async def update(  # type: ignore[override]
        self,
        id: str,
        /,
        expected_version: int | None = None,
        **changes: Unpack[SpecializationChanges],
    ) -> Specialization:
        """Change fields of a live record, atomically; returns the new record.

        With ``expected_version`` the change applies only if the record is still
        at that version, else :class:`Conflict`. Fields set by clonestore (``id``,
        ``version``...) are refused with :class:`ValidationError`."""

    async def find_by_name(self, name: str) -> Specialization | None:
        """The specialization called ``name`` (exactly), or None."""


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

    async def verify(
        self, owner: str | None = None, *, expect_head: tuple[int, str] | None = None
    ) -> Any: ...

    async def head(self, owner: str | None = None) -> tuple[int, str]: ...

    async def anchor(self) -> tuple[int, str]: ...

    async def export_user(self, user_id: str) -> dict[str, Any]: ...

    async def erase_user(self, user_id: str) -> int: ...


class AsyncRepositories:
    """The repositories of a user's rows, awaited (``clonestore.repositories``' list)."""

    users: AsyncUserRepository
    voice_models: AsyncVoiceModelRepository
    face_models: AsyncFaceModelRepository
    sessions: AsyncSessionRepository
    turns: AsyncTurnRepository
    documents: AsyncDocumentRepository
    memories: AsyncMemoryRepository


class AsyncCatalogues:
    """The repositories of the tables no user owns, awaited (``clonestore.repositories``' list)."""

    specializations: AsyncSpecializationRepository
