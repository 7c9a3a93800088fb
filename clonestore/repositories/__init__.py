"""Domain repositories, written once over the SPI."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from clonestore.repositories.base import (
    MAX_PAGE_SIZE,
    Clock,
    Page,
    Repository,
    RepositoryContext,
)
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
from clonestore.repositories.users import CASCADE_TABLES, OWNED_TABLES, UserRepository

__all__ = [
    "CASCADE_TABLES",
    "CATALOGUES",
    "DOCUMENT_TRANSITIONS",
    "MAX_PAGE_SIZE",
    "METRICS",
    "OWNED_TABLES",
    "REPOSITORIES",
    "SESSION_TRANSITIONS",
    "Clock",
    "CloneModelRepository",
    "DocumentRepository",
    "FaceModelRepository",
    "MemoryRepository",
    "OwnedRepository",
    "Page",
    "Repository",
    "RepositoryContext",
    "ScoredMemory",
    "SessionRepository",
    "SessionStatistics",
    "SessionWithTurns",
    "SpecializationRepository",
    "TurnRepository",
    "UserRepository",
    "VoiceModelRepository",
    "build_repositories",
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


def build_repositories(context: RepositoryContext) -> Mapping[str, Repository[Any]]:
    """One repository per domain table (owned ones, then catalogues), entered in
    ``context.repositories``, where each finds its siblings."""
    for name, cls in (*REPOSITORIES.items(), *CATALOGUES.items()):
        context.repositories[name] = cls(context, context.tables[name])
    return context.repositories
