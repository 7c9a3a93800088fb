"""clonestore: the data layer of a real-time conversational clone system.

Open a store on a URL and use its repositories::

    import clonestore

    with clonestore.open("memory://") as store:
        user = store.users.create(email="ada@example.com", name="Ada")

Backends and features are pluggy plugins (entry-point group ``clonestore``);
plugins mark their hook implementations with :data:`hookimpl`.
"""

from __future__ import annotations

import pluggy

from clonestore._async_store import AsyncStore, open_async
from clonestore._opening import DEFAULT_URL, open
from clonestore._operations import Context, Operation
from clonestore._store import Store
from clonestore.errors import (
    AlreadyExists,
    BackendError,
    ClonestoreError,
    ConfigurationError,
    Conflict,
    DumpError,
    ForeignKeyViolation,
    InvalidTransition,
    MigrationsPending,
    NotFound,
    RateLimited,
    StorageUnavailable,
    ValidationError,
)
from clonestore.records import (
    Document,
    Entity,
    FaceModel,
    Memory,
    Session,
    SoftDeletable,
    Specialization,
    Turn,
    User,
    VoiceModel,
)
from clonestore.repositories import (
    Page,
    Repository,
    Scored,
    ScoredMemory,
    SessionStatistics,
    SessionWithTurns,
)
from clonestore.schema import (
    Column,
    ForeignKey,
    Index,
    TableSpec,
    Unique,
    column,
    record,
    table_spec,
)

__version__ = "0.1.0"

#: Marker for plugin hook implementations: ``@clonestore.hookimpl``.
hookimpl = pluggy.HookimplMarker("clonestore")

__all__ = [
    "DEFAULT_URL",
    "AlreadyExists",
    "AsyncStore",
    "BackendError",
    "ClonestoreError",
    "Column",
    "ConfigurationError",
    "Conflict",
    "Context",
    "Document",
    "DumpError",
    "Entity",
    "FaceModel",
    "ForeignKey",
    "ForeignKeyViolation",
    "Index",
    "InvalidTransition",
    "Memory",
    "MigrationsPending",
    "NotFound",
    "Operation",
    "Page",
    "RateLimited",
    "Repository",
    "Scored",
    "ScoredMemory",
    "Session",
    "SessionStatistics",
    "SessionWithTurns",
    "SoftDeletable",
    "Specialization",
    "StorageUnavailable",
    "Store",
    "TableSpec",
    "Turn",
    "Unique",
    "User",
    "ValidationError",
    "VoiceModel",
    "__version__",
    "column",
    "hookimpl",
    "open",
    "open_async",
    "record",
    "table_spec",
]
