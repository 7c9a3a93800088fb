"""The keyword arguments of each repository's ``create`` and ``update``, as TypedDicts.

``store.users.create(**fields: Unpack[UserCreate])`` and
``store.users.update(id, **changes: Unpack[UserChanges])``: a misspelt or
system field (``nmae=``, ``version=``) is a type error for mypy and pyright,
as it is a :class:`~clonestore.ValidationError` when the call runs. Value types
are what the store accepts (a list field takes a list or a tuple; an id, a
string or a :class:`uuid.UUID`; a vector, any sequence or numpy array of numbers).

Generated from the records by ``tools/generate_fields.py`` (``python
tools/generate_fields.py`` rewrites it); ``tests/test_typing.py`` fails when the
two disagree. Do not edit by hand.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Required, TypedDict

from clonestore.schema import VectorLike

__all__ = [
    "DocumentChanges",
    "DocumentCreate",
    "FaceModelChanges",
    "FaceModelCreate",
    "MemoryChanges",
    "MemoryCreate",
    "SessionChanges",
    "SessionCreate",
    "SpecializationChanges",
    "SpecializationCreate",
    "TurnChanges",
    "TurnCreate",
    "UserChanges",
    "UserCreate",
    "VoiceModelChanges",
    "VoiceModelCreate",
]


class UserCreate(TypedDict, total=False):
    """What ``store.users.create`` takes."""

    id: str | uuid.UUID
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    email: Required[str]
    name: str | None
    personality_traits: list[str] | tuple[str, ...]
    subscription_tier: str
    settings: dict[str, Any]


class UserChanges(TypedDict, total=False):
    """What ``store.users.update`` takes."""

    email: str
    name: str | None
    personality_traits: list[str] | tuple[str, ...]
    subscription_tier: str
    settings: dict[str, Any]


class VoiceModelCreate(TypedDict, total=False):
    """What ``store.voice_models.create`` takes."""

    id: str | uuid.UUID
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    user_id: Required[str | uuid.UUID]
    name: str | None
    provider: Required[str]
    status: str
    quality_score: float | None
    settings: dict[str, Any]
    external_voice_id: str | None
    model_path: str | None
    sample_paths: list[str] | tuple[str, ...]


class VoiceModelChanges(TypedDict, total=False):
    """What ``store.voice_models.update`` takes."""

    name: str | None
    provider: str
    status: str
    quality_score: float | None
    settings: dict[str, Any]
    external_voice_id: str | None
    model_path: str | None
    sample_paths: list[str] | tuple[str, ...]


class FaceModelCreate(TypedDict, total=False):
    """What ``store.face_models.create`` takes."""

    id: str | uuid.UUID
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    user_id: Required[str | uuid.UUID]
    name: str | None
    provider: Required[str]
    status: str
    quality_score: float | None
    settings: dict[str, Any]
    model_path: str | None
    resolution: dict[str, int] | None
    reference_image_paths: list[str] | tuple[str, ...]


class FaceModelChanges(TypedDict, total=False):
    """What ``store.face_models.update`` takes."""

    name: str | None
    provider: str
    status: str
    quality_score: float | None
    settings: dict[str, Any]
    model_path: str | None
    resolution: dict[str, int] | None
    reference_image_paths: list[str] | tuple[str, ...]


class SessionCreate(TypedDict, total=False):
    """What ``store.sessions.create`` takes."""

    id: str | uuid.UUID
    created_at: datetime
    updated_at: datetime
    user_id: Required[str | uuid.UUID]
    voice_model_id: str | uuid.UUID | None
    face_model_id: str | uuid.UUID | None
    llm_provider: str | None
    tts_provider: str | None
    started_at: datetime
    metadata: dict[str, Any]


class SessionChanges(TypedDict, total=False):
    """What ``store.sessions.update`` takes."""

    llm_provider: str | None
    tts_provider: str | None
    metadata: dict[str, Any]


class TurnCreate(TypedDict, total=False):
    """What ``store.turns.create`` takes."""

    id: str | uuid.UUID
    created_at: datetime
    updated_at: datetime
    session_id: Required[str | uuid.UUID]
    user_transcript: str
    llm_response: str
    asr_latency_ms: int
    rag_latency_ms: int
    llm_latency_ms: int
    tts_latency_ms: int
    asr_cost: Decimal | int
    llm_cost: Decimal | int
    tts_cost: Decimal | int
    interrupted: bool
    metadata: dict[str, Any]


class TurnChanges(TypedDict, total=False):
    """What ``store.turns.update`` takes."""

    user_transcript: str
    llm_response: str
    interrupted: bool
    metadata: dict[str, Any]


class DocumentCreate(TypedDict, total=False):
    """What ``store.documents.create`` takes."""

    id: str | uuid.UUID
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    user_id: Required[str | uuid.UUID]
    filename: Required[str]
    content_type: str
    size_bytes: int
    text_content: str | None
    tags: list[str] | tuple[str, ...]
    storage_path: str | None
    uploaded_at: datetime


class DocumentChanges(TypedDict, total=False):
    """What ``store.documents.update`` takes."""

    filename: str
    content_type: str
    size_bytes: int
    text_content: str | None
    tags: list[str] | tuple[str, ...]
    storage_path: str | None


class MemoryCreate(TypedDict, total=False):
    """What ``store.memories.create`` takes."""

    id: str | uuid.UUID
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    user_id: Required[str | uuid.UUID]
    content: Required[str]
    embedding: VectorLike | None
    memory_type: str
    importance: float
    session_id: str | uuid.UUID | None
    tags: list[str] | tuple[str, ...]
    metadata: dict[str, Any]


class MemoryChanges(TypedDict, total=False):
    """What ``store.memories.update`` takes."""

    content: str
    embedding: VectorLike | None
    memory_type: str
    importance: float
    tags: list[str] | tuple[str, ...]
    metadata: dict[str, Any]


class SpecializationCreate(TypedDict, total=False):
    """What ``store.specializations.create`` takes."""

    id: str | uuid.UUID
    created_at: datetime
    updated_at: datetime
    name: Required[str]
    description: str | None
    model_path: Required[str]


class SpecializationChanges(TypedDict, total=False):
    """What ``store.specializations.update`` takes."""

    name: str
    description: str | None
    model_path: str
