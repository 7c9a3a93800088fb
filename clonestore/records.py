"""Records of the clone domain: frozen attrs classes validated at construction.

Each record is a row of one table (see :data:`TABLES`). System fields
(``id``, ``created_at``, ``updated_at``, ``version`` and, where rows are
soft-deleted, ``deleted_at``) are set by the core; the rest follow the seed
system. A record that exists is valid: every field checks its value when the
record is built, with the same rules the store applies to input.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import attrs

from clonestore.schema import (
    Column,
    Index,
    TableSpec,
    Unique,
    column,
    json_object,
    record,
    table_spec,
)

__all__ = [
    "DOCUMENT_STATUSES",
    "MEMORY_TYPES",
    "MODEL_STATUSES",
    "SESSION_STATES",
    "SUBSCRIPTION_TIERS",
    "TABLES",
    "Document",
    "Entity",
    "FaceModel",
    "Memory",
    "Session",
    "SoftDeletable",
    "Specialization",
    "Turn",
    "User",
    "VoiceModel",
    "record",
    "to_json",
]

SUBSCRIPTION_TIERS: Final = ("free", "pro", "enterprise")
SESSION_STATES: Final = ("idle", "listening", "processing", "speaking", "interrupted", "error")
DOCUMENT_STATUSES: Final = ("pending", "processing", "completed", "failed")
MODEL_STATUSES: Final = ("training", "ready", "failed")
MEMORY_TYPES: Final = ("fact", "preference", "episode", "relationship")

_LONG_TEXT: Final = 1_000_000


def _empty_dict() -> dict[str, Any]:
    return {}


def _empty_list() -> list[Any]:
    return []


def _resolution(value: Any) -> str | None:
    """Must be ``{"width": w, "height": h}`` in positive integers. A face model's resolution."""
    if type(value) is not dict or set(value) != {"width", "height"}:
        return 'must be an object {"width": ..., "height": ...}'
    if not all(type(v) is int and 0 < v <= 1_000_000 for v in value.values()):
        return "width and height must be integers from 1 to 1000000"
    return None


@record
class Entity:
    """Fields every record has, all set by the core: inherit it (or
    :class:`SoftDeletable`) to define your own records."""

    id: str = column("id", settable="no")
    created_at: datetime = column("datetime", settable="no")
    updated_at: datetime = column("datetime", settable="no")
    version: int = column("int", settable="no", minimum=1)


@record
class SoftDeletable(Entity):
    """A record that ``delete()`` hides (``deleted_at`` set) and ``restore()`` brings back."""

    deleted_at: datetime | None = column("datetime", nullable=True, settable="no", default=None)


@record
class User(SoftDeletable):
    """A person who owns clones. Emails are unique among live users, ignoring case."""

    email: str = column("text", email=True, casefold=True, max_length=254)
    name: str = column("text", max_length=200, min_length=1)
    personality_traits: tuple[str, ...] = column(
        "list", max_length=100, default_factory=_empty_list
    )
    subscription_tier: str = column("text", choices=SUBSCRIPTION_TIERS, default="free")
    settings: dict[str, Any] = column("json", validator=json_object, default_factory=_empty_dict)


@record
class CloneModel(SoftDeletable):
    """Fields shared by voice and face models. At most one per user is active."""

    user_id: str = column("id", settable="create")
    name: str = column("text", max_length=200, min_length=1)
    provider: str = column("text", max_length=100, min_length=1)
    status: str = column("text", choices=MODEL_STATUSES, default="training")
    quality_score: float | None = column(
        "float", nullable=True, minimum=0.0, maximum=1.0, default=None
    )
    is_active: bool = column("bool", settable="no", default=False)
    settings: dict[str, Any] = column("json", validator=json_object, default_factory=_empty_dict)


@record
class VoiceModel(CloneModel):
    """A person's cloned voice."""

    external_voice_id: str | None = column("text", nullable=True, max_length=200, default=None)
    model_path: str | None = column("text", nullable=True, max_length=1000, default=None)
    sample_paths: tuple[str, ...] = column("list", max_length=1000, default_factory=_empty_list)


@record
class FaceModel(CloneModel):
    """A person's cloned face."""

    model_path: str | None = column("text", nullable=True, max_length=1000, default=None)
    resolution: dict[str, int] | None = column(
        "json", nullable=True, validator=_resolution, default=None
    )
    reference_image_paths: tuple[str, ...] = column(
        "list", max_length=1000, default_factory=_empty_list
    )


@record
class Session(Entity):
    """A conversation with a clone. Totals are kept by ``sessions.add_turn``."""

    user_id: str = column("id", settable="create")
    voice_model_id: str | None = column("id", nullable=True, settable="create", default=None)
    face_model_id: str | None = column("id", nullable=True, settable="create", default=None)
    llm_provider: str | None = column("text", nullable=True, max_length=100, default=None)
    tts_provider: str | None = column("text", nullable=True, max_length=100, default=None)
    state: str = column("text", choices=SESSION_STATES, settable="no", default="idle")
    started_at: datetime = column("datetime", settable="create")
    ended_at: datetime | None = column("datetime", nullable=True, settable="no", default=None)
    total_turns: int = column("int", settable="no", minimum=0, default=0)
    last_turn_index: int = column("int", settable="no", minimum=0, default=0)
    total_latency_ms: int = column("int", settable="no", minimum=0, default=0)
    total_cost: Decimal = column("decimal", settable="no", minimum=Decimal(0), default=Decimal(0))
    metadata: dict[str, Any] = column("json", validator=json_object, default_factory=_empty_dict)

    @property
    def average_latency_ms(self) -> float | None:
        """Mean latency over the session's turns (None before the first turn)."""
        return self.total_latency_ms / self.total_turns if self.total_turns else None


@record
class Turn(Entity):
    """One exchange in a session: what the user said, what the clone answered, and its cost."""

    session_id: str = column("id", settable="create")
    user_id: str = column("id", settable="no")
    turn_index: int = column("int", settable="no", minimum=1)
    user_transcript: str = column("text", max_length=_LONG_TEXT, default="")
    llm_response: str = column("text", max_length=_LONG_TEXT, default="")
    asr_latency_ms: int = column("int", settable="create", minimum=0, default=0)
    rag_latency_ms: int = column("int", settable="create", minimum=0, default=0)
    llm_latency_ms: int = column("int", settable="create", minimum=0, default=0)
    tts_latency_ms: int = column("int", settable="create", minimum=0, default=0)
    asr_cost: Decimal = column("decimal", settable="create", minimum=Decimal(0), default=Decimal(0))
    llm_cost: Decimal = column("decimal", settable="create", minimum=Decimal(0), default=Decimal(0))
    tts_cost: Decimal = column("decimal", settable="create", minimum=Decimal(0), default=Decimal(0))
    interrupted: bool = column("bool", default=False)
    metadata: dict[str, Any] = column("json", validator=json_object, default_factory=_empty_dict)

    @property
    def latency_ms(self) -> int:
        """The turn's latency: the sum of its four stage latencies."""
        return self.asr_latency_ms + self.rag_latency_ms + self.llm_latency_ms + self.tts_latency_ms

    @property
    def cost(self) -> Decimal:
        """The turn's cost: the exact sum of its three stage costs."""
        return self.asr_cost + self.llm_cost + self.tts_cost


@record
class Document(SoftDeletable):
    """A knowledge document uploaded for a clone, processed into chunks and vectors."""

    user_id: str = column("id", settable="create")
    filename: str = column("text", max_length=255, min_length=1)
    content_type: str = column("text", max_length=100, default="application/octet-stream")
    size_bytes: int = column("int", minimum=0, default=0)
    text_content: str | None = column("text", nullable=True, max_length=10_000_000, default=None)
    chunk_count: int = column("int", minimum=0, settable="no", default=0)
    status: str = column("text", choices=DOCUMENT_STATUSES, settable="no", default="pending")
    vector_ids: tuple[str, ...] = column(
        "list", max_length=100_000, settable="no", default_factory=_empty_list
    )
    tags: tuple[str, ...] = column("list", max_length=100, default_factory=_empty_list)
    storage_path: str | None = column("text", nullable=True, max_length=1000, default=None)
    error_message: str | None = column(
        "text", nullable=True, settable="no", max_length=10_000, default=None
    )
    uploaded_at: datetime = column("datetime", settable="create")
    processed_at: datetime | None = column("datetime", nullable=True, settable="no", default=None)


@record
class Memory(SoftDeletable):
    """Something a clone remembers about its person, with an embedding for recall."""

    user_id: str = column("id", settable="create")
    content: str = column("text", max_length=100_000, min_length=1)
    embedding: tuple[float, ...] = column("vector", max_length=16_384, min_length=1)
    memory_type: str = column("text", choices=MEMORY_TYPES, default="fact")
    importance: float = column("float", minimum=0.0, maximum=1.0, default=0.5)
    session_id: str | None = column("id", nullable=True, settable="create", default=None)
    tags: tuple[str, ...] = column("list", max_length=100, default_factory=_empty_list)
    metadata: dict[str, Any] = column("json", validator=json_object, default_factory=_empty_dict)


@record
class Specialization(Entity):
    """A specialised model a clone can use (``database-guidelines.md``): its name is unique."""

    name: str = column("text", max_length=200, min_length=1)
    description: str | None = column("text", nullable=True, max_length=10_000, default=None)
    model_path: str = column("text", max_length=1000, min_length=1)


#: Hidden column on rows removed by a user's cascading soft delete: the user's
#: id, so ``users.restore`` brings back exactly what the cascade removed.
CASCADE_COLUMN: Final = Column(name="deleted_by_cascade", kind="id", nullable=True, settable="no")


def _with_cascade(spec: TableSpec) -> TableSpec:
    # ``users.restore`` finds what the cascade removed by this column.
    cascade_index = Index((CASCADE_COLUMN.name,))
    return attrs.evolve(
        spec, columns=(*spec.columns, CASCADE_COLUMN), indexes=(*spec.indexes, cascade_index)
    )


_ONE_ACTIVE: Final = Unique(("user_id",), when=(("is_active", True),))
#: The repositories' default order (``find_many``/``page`` without ``order_by``),
#: over live rows: a page reads the index from its cursor on, whatever the
#: table's size. ``_OWNER_ORDER`` is the same within one user's rows. Tables
#: without soft delete (sessions, turns) index every row in the same orders.
_PAGE_ORDER: Final = Index(("created_at", "id"), live=True)
_OWNER_ORDER: Final = Index(("user_id", "created_at", "id"), live=True)

#: Table specs of the clone domain, by repository name.
TABLES: Final[dict[str, TableSpec]] = {
    "users": table_spec(User, "users", unique=[Unique(("email_key",))], indexes=[_PAGE_ORDER]),
    "voice_models": _with_cascade(
        table_spec(
            VoiceModel,
            "voice_models",
            unique=[_ONE_ACTIVE],
            indexes=[Index(("user_id", "is_active")), _PAGE_ORDER, _OWNER_ORDER],
        )
    ),
    "face_models": _with_cascade(
        table_spec(
            FaceModel,
            "face_models",
            unique=[_ONE_ACTIVE],
            indexes=[Index(("user_id", "is_active")), _PAGE_ORDER, _OWNER_ORDER],
        )
    ),
    "sessions": table_spec(
        Session,
        "sessions",
        indexes=[
            Index(("user_id", "started_at")),
            Index(("started_at",)),
            Index(("created_at", "id")),
            Index(("user_id", "created_at", "id")),
        ],
    ),
    "turns": table_spec(
        Turn,
        "turns",
        unique=[Unique(("session_id", "turn_index"))],
        indexes=[Index(("user_id",)), Index(("created_at", "id"))],
    ),
    "documents": _with_cascade(
        table_spec(
            Document,
            "documents",
            indexes=[
                Index(("user_id",)),
                Index(("uploaded_at",)),
                Index(("status",)),
                _PAGE_ORDER,
                _OWNER_ORDER,
            ],
        )
    ),
    "memories": _with_cascade(
        table_spec(
            Memory,
            "memories",
            indexes=[Index(("user_id",)), Index(("session_id",)), _PAGE_ORDER, _OWNER_ORDER],
        )
    ),
    "specializations": table_spec(Specialization, "specializations", unique=[Unique(("name",))]),
}


def to_json(value: Any) -> Any:
    """A JSON-ready copy: records become dicts, datetimes ISO 8601, Decimals strings."""
    if attrs.has(type(value)):
        return {f.name: to_json(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value
