"""Domain repositories, written once over the SPI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from clonestore.records import TABLES
from clonestore.repositories.base import MAX_PAGE_SIZE, Page, Repository
from clonestore.repositories.documents import DOCUMENT_TRANSITIONS, DocumentRepository
from clonestore.repositories.memories import METRICS, MemoryRepository, ScoredMemory
from clonestore.repositories.models import (
    CloneModelRepository,
    FaceModelRepository,
    VoiceModelRepository,
)
from clonestore.repositories.owned import OwnedRepository
from clonestore.repositories.sessions import (
    SESSION_TRANSITIONS,
    SessionRepository,
    SessionStatistics,
    SessionWithTurns,
    TurnRepository,
)
from clonestore.repositories.specializations import SpecializationRepository
from clonestore.repositories.users import UserRepository

if TYPE_CHECKING:
    from clonestore.store import Store

__all__ = [
    "CATALOGUES",
    "DOCUMENT_TRANSITIONS",
    "MAX_PAGE_SIZE",
    "METRICS",
    "REPOSITORIES",
    "SESSION_TRANSITIONS",
    "CloneModelRepository",
    "DocumentRepository",
    "FaceModelRepository",
    "MemoryRepository",
    "OwnedRepository",
    "Page",
    "Repository",
    "ScoredMemory",
    "SessionRepository",
    "SessionStatistics",
    "SessionWithTurns",
    "SpecializationRepository",
    "TurnRepository",
    "UserRepository",
    "VoiceModelRepository",
    "attach_repositories",
]

#: Store attribute -> repository class; the attribute is also the table name.
REPOSITORIES: Final[dict[str, type[Repository[Any]]]] = {
    "users": UserRepository,
    "voice_models": VoiceModelRepository,
    "face_models": FaceModelRepository,
    "sessions": SessionRepository,
    "turns": TurnRepository,
    "documents": DocumentRepository,
    "memories": MemoryRepository,
}


#: Store attribute -> repository of a table no user owns (not in a user's view).
CATALOGUES: Final[dict[str, type[Repository[Any]]]] = {
    "specializations": SpecializationRepository,
}


def attach_repositories(store: Store) -> None:
    """Give the store one repository per domain table."""
    for name, cls in (*REPOSITORIES.items(), *CATALOGUES.items()):
        setattr(store, name, cls(store, TABLES[name]))
