"""Domain repositories, written once over the SPI."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any, Final

from clonestore.repositories.base import (
    MAX_PAGE_SIZE,
    Clock,
    Page,
    Repository,
    RepositoryContext,
    Scored,
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
    "Catalogues",
    "Clock",
    "CloneModelRepository",
    "DocumentRepository",
    "FaceModelRepository",
    "MemoryRepository",
    "OwnedRepository",
    "Page",
    "Repositories",
    "Repository",
    "RepositoryContext",
    "Scored",
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

class Repositories:
    """The repositories of a user's rows, as a store and a user's view
    (``store.for_user``) have them; each attribute is also the table's name.

    The one list of the repositories: :data:`REPOSITORIES` is read from these
    annotations, the stores inherit them, and ``tools/generate_async_types.py`` makes
    the awaited ones (``clonestore.async_types.AsyncRepositories``) from them."""

    users: UserRepository
    voice_models: VoiceModelRepository
    face_models: FaceModelRepository
    sessions: SessionRepository
    turns: TurnRepository
    documents: DocumentRepository
    memories: MemoryRepository


class Catalogues:
    """The repositories of tables no user owns (not in a user's view), as a store has
    them; :data:`CATALOGUES` is read from these annotations."""

    specializations: SpecializationRepository


def _listed(cls: type) -> dict[str, type[Repository[Any]]]:
    hints = typing.get_type_hints(cls)
    return {name: hints[name] for name in cls.__annotations__}


#: Store attribute -> repository class; the attribute is also the table name.
REPOSITORIES: Final[dict[str, type[Repository[Any]]]] = _listed(Repositories)

#: Store attribute -> repository of a table no user owns (not in a user's view).
CATALOGUES: Final[dict[str, type[Repository[Any]]]] = _listed(Catalogues)


def build_repositories(context: RepositoryContext) -> Mapping[str, Repository[Any]]:
    """One repository per domain table (owned ones, then catalogues), entered in
    ``context.repositories``, where each finds its siblings."""
    for name, cls in (*REPOSITORIES.items(), *CATALOGUES.items()):
        context.repositories[name] = cls(context, context.tables[name])
    return context.repositories
