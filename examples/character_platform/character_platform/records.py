"""Records and tables of the Character Creation Platform.

Records are declared with :func:`clonestore.record` and :func:`clonestore.column`
exactly as clonestore's own are, so they validate at construction and become
table specs with :func:`clonestore.table_spec`. The generic
:class:`clonestore.Repository` sets four system fields on every record it
creates (``id``, ``created_at``, ``updated_at``, ``version``): records inherit
them from :class:`clonestore.Entity`; one that inherits
:class:`clonestore.SoftDeletable` also has ``deleted_at`` and is soft-deleted
and restorable.

The daily usage counter is a plain table (no record, no repository): it is
written only with the SPI's atomic ``upsert`` (see :mod:`character_platform.quota`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from clonestore import (
    Column,
    Entity,
    Index,
    SoftDeletable,
    TableSpec,
    Unique,
    column,
    record,
    table_spec,
)

__all__ = [
    "GENERATION_STATUSES",
    "STYLE_TYPES",
    "TABLES",
    "USAGE",
    "Character",
    "CharacterTemplate",
    "Generation",
]

#: The art styles a character (or template) is drawn in.
STYLE_TYPES: Final = ("anime", "realistic", "cartoon", "fantasy", "pixel")
#: The generation queue: pending -> running -> succeeded | failed (failed may be retried).
GENERATION_STATUSES: Final = ("pending", "running", "succeeded", "failed")

_NAME: Final = {"max_length": 100, "min_length": 1}
_PROMPT: Final = {"max_length": 4000, "min_length": 1}


def _no_tags() -> list[str]:
    return []


@record
class Character(SoftDeletable):
    """A character a user created. Public ones appear in the gallery.

    ``name`` is ``casefold``: clonestore keeps ``name_key`` (``name.casefold()``)
    beside it, which the gallery's case-insensitive search uses.
    """

    user_id: str = column("id", settable="create")
    name: str = column("text", casefold=True, **_NAME)
    prompt: str = column("text", **_PROMPT)
    style_type: str = column("text", choices=STYLE_TYPES)
    tags: tuple[str, ...] = column("list", max_length=20, default_factory=_no_tags)
    is_public: bool = column("bool", default=False)
    template_id: str | None = column("id", nullable=True, settable="create")


@record
class CharacterTemplate(Entity):
    """A starting point for new characters; names are unique, ignoring case."""

    name: str = column("text", casefold=True, **_NAME)
    prompt: str = column("text", **_PROMPT)
    style_type: str = column("text", choices=STYLE_TYPES)
    tags: tuple[str, ...] = column("list", max_length=20, default_factory=_no_tags)


@record
class Generation(Entity):
    """One image generation of a character, queued for a worker.

    Only the queue operations move ``status`` (``settable="no"``), so
    ``update()`` cannot skip a step.
    """

    character_id: str = column("id", settable="create")
    user_id: str = column("id", settable="create")
    prompt: str = column("text", settable="create", **_PROMPT)
    status: str = column("text", choices=GENERATION_STATUSES, settable="no", default="pending")
    worker: str | None = column("text", nullable=True, max_length=200, settable="no")
    attempts: int = column("int", minimum=0, settable="no", default=0)
    started_at: datetime | None = column("datetime", nullable=True, settable="no")
    finished_at: datetime | None = column("datetime", nullable=True, settable="no")
    result_url: str | None = column("text", nullable=True, max_length=2000, settable="no")
    error: str | None = column("text", nullable=True, max_length=10_000, settable="no")


#: Generations per user per UTC day, kept with atomic upserts; ``day`` is ``YYYY-MM-DD``.
USAGE: Final = TableSpec(
    name="generation_usage",
    columns=(
        Column(name="id", kind="id"),
        Column(name="user_id", kind="id"),
        Column(name="day", kind="key", max_length=10),
        Column(name="used", kind="int", minimum=0),
        Column(name="updated_at", kind="datetime"),
    ),
    unique=(Unique(("user_id", "day")),),
)

#: Every table the platform adds to a store, by name.
TABLES: Final[dict[str, TableSpec]] = {
    "characters": table_spec(
        Character,
        "characters",
        indexes=[Index(("user_id",)), Index(("is_public", "created_at")), Index(("name_key",))],
    ),
    "character_templates": table_spec(
        CharacterTemplate, "character_templates", unique=[Unique(("name_key",))]
    ),
    "generations": table_spec(
        Generation,
        "generations",
        indexes=[
            Index(("status", "created_at")),
            Index(("user_id", "status")),
            Index(("character_id",)),
        ],
    ),
    "generation_usage": USAGE,
}
