"""Records of the clone domain: frozen attrs classes validated at construction.

Each record is a row of one table (see :data:`TABLES`). System fields
(``id``, ``created_at``, ``updated_at``, ``version`` and, where rows are
soft-deleted, ``deleted_at``) are set by the core, except that ``create``
takes a caller's id and the times of an imported row; the rest follow the
seed system. A record that exists is valid: every field checks its value when the
record is built, with the same rules the store applies to input.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import attrs

from clonestore.maintenance import LEASES
from clonestore.schema import (
    Column,
    ForeignKey,
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
    "SESSION_TOTALS",
    "SUBSCRIPTION_TIERS",
    "SYSTEM_TABLES",
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
    """Fields every record has: inherit it (or :class:`SoftDeletable`) to define your
    own records.

    ``create`` generates ``id`` (a random UUID) and stamps ``created_at`` and
    ``updated_at`` with the store's clock, unless the caller gives them: an id
    of its own (any string of 1 to 128 characters without control characters)
    or the times of an imported row (``updated_at`` defaults to ``created_at``
    then, and may not be earlier). Only the core sets ``version``.
    """

    id: str = column("id", settable="create")
    created_at: datetime = column("datetime", settable="create")
    updated_at: datetime = column("datetime", settable="create")
    version: int = column("int", settable="no", minimum=1)


@record
class SoftDeletable(Entity):
    """A record that ``delete()`` hides (``deleted_at`` set) and ``restore()`` brings back.

    ``create`` takes ``deleted_at`` for an imported row that was already
    deleted (not earlier than ``created_at``): it is stored hidden, as if
    ``delete()`` had hidden it.
    """

    deleted_at: datetime | None = column(
        "datetime", nullable=True, settable="create", default=None
    )


@record
class User(SoftDeletable):
    """A person who owns clones. Emails are unique among live users, ignoring case;
    the name is optional, as in the original schema (``name String?``)."""

    email: str = column("text", email=True, casefold=True, max_length=254)
    name: str | None = column("text", nullable=True, max_length=200, min_length=1, default=None)
    personality_traits: tuple[str, ...] = column(
        "list", max_length=100, default_factory=_empty_list
    )
    subscription_tier: str = column("text", choices=SUBSCRIPTION_TIERS, default="free")
    settings: dict[str, Any] = column("json", validator=json_object, default_factory=_empty_dict)


@record
class CloneModel(SoftDeletable):
    """Fields shared by voice and face models. At most one per user is active. The name
    is optional (no original document has one)."""

    user_id: str = column("id", settable="create")
    name: str | None = column("text", nullable=True, max_length=200, min_length=1, default=None)
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
    """Something a clone remembers about its person, with an embedding for recall.

    As in the original schema, the embedding is optional (a memory without one is
    never returned by ``similar`` or ``nearest``) and ``importance`` defaults to 0.
    """

    user_id: str = column("id", settable="create")
    content: str = column("text", max_length=100_000, min_length=1)
    embedding: tuple[float, ...] | None = column(
        "vector", nullable=True, max_length=16_384, min_length=1, default=None
    )
    memory_type: str = column("text", choices=MEMORY_TYPES, default="fact")
    importance: float = column("float", minimum=0.0, maximum=1.0, default=0.0)
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

# The relations of the original schema, declared here and nowhere else: every engine's
# constraints (SQL FOREIGN KEYs, memory://'s checks, migration 0008, `clonestore orphans`)
# are built from these. Owned rows point at their user, turns at their session, a memory
# at the session it came from (set to NULL when that session goes: the original's
# ``onDelete: SetNull``). The core removes referencing rows itself before the row they
# point at (erase_user, sessions.hard_delete), so the engine's part is to refuse orphans.
#: A row's owner: ``user_id`` -> ``users.id``.
OWNER: Final = ForeignKey(("user_id",), "users")
#: A turn's session: ``session_id`` -> ``sessions.id``.
TURN_SESSION: Final = ForeignKey(("session_id",), "sessions")
#: A memory's session, if any: ``session_id`` -> ``sessions.id``, NULL when it goes.
MEMORY_SESSION: Final = ForeignKey(("session_id",), "sessions", on_delete="set_null")

#: Table specs of the clone domain, by repository name.
#: Per user, the totals of their ended sessions (which take no more turns), kept in
#: the same transaction as each write that changes them; ``sessions.user_statistics``
#: adds the user's open sessions to them. Derived data: written by the core only.
SESSION_TOTALS: Final = TableSpec(
    name="session_totals",
    columns=(
        Column(name="id", kind="id"),
        Column(name="user_id", kind="id"),
        Column(name="ended_sessions", kind="int"),
        Column(name="total_turns", kind="int"),
        Column(name="total_cost", kind="decimal"),
        Column(name="total_latency_ms", kind="int"),
        Column(name="first_started_at", kind="datetime", nullable=True),
        Column(name="last_started_at", kind="datetime", nullable=True),
        Column(name="version", kind="int"),
    ),
)

TABLES: Final[dict[str, TableSpec]] = {
    "users": table_spec(User, "users", unique=[Unique(("email_key",))], indexes=[_PAGE_ORDER]),
    "voice_models": _with_cascade(
        table_spec(
            VoiceModel,
            "voice_models",
            unique=[_ONE_ACTIVE],
            indexes=[Index(("user_id", "is_active")), _PAGE_ORDER, _OWNER_ORDER],
            foreign_keys=[OWNER],
        )
    ),
    "face_models": _with_cascade(
        table_spec(
            FaceModel,
            "face_models",
            unique=[_ONE_ACTIVE],
            indexes=[Index(("user_id", "is_active")), _PAGE_ORDER, _OWNER_ORDER],
            foreign_keys=[OWNER],
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
            # user_statistics sums a user's open sessions live (ended ones are in
            # session_totals): this index reads exactly those.
            Index(("user_id", "ended_at")),
        ],
        foreign_keys=[OWNER],
    ),
    "turns": table_spec(
        Turn,
        "turns",
        unique=[Unique(("session_id", "turn_index"))],
        indexes=[Index(("user_id",)), Index(("created_at", "id"))],
        foreign_keys=[TURN_SESSION, OWNER],
        partition_by="created_at",
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
            foreign_keys=[OWNER],
        )
    ),
    "memories": _with_cascade(
        table_spec(
            Memory,
            "memories",
            indexes=[Index(("user_id",)), Index(("session_id",)), _PAGE_ORDER, _OWNER_ORDER],
            foreign_keys=[OWNER, MEMORY_SESSION],
        )
    ),
    "specializations": table_spec(Specialization, "specializations", unique=[Unique(("name",))]),
}

#: The core's own tables, beside the records': derived totals and the maintenance
#: lease. No repository, no record; created and migrated with the records' tables.
SYSTEM_TABLES: Final[dict[str, TableSpec]] = {
    "session_totals": SESSION_TOTALS,
    "maintenance_leases": LEASES,
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
