"""The platform as a clonestore plugin: its tables, and repositories attached to the store.

Pass an instance when opening a store; nothing in clonestore changes::

    store = clonestore.open("sqlite:///platform.db", plugins=[CharacterPlatform()])
    store.characters.create(user_id=ada.id, name="Mira", prompt="...", style_type="anime")

It could equally be installed as a package and registered by entry point in
the ``clonestore`` group, then enabled by name (``plugins=["characters"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from character_platform.quota import TIER_LIMITS, DailyQuota
from character_platform.records import TABLES
from character_platform.repositories import (
    CharacterRepository,
    GenerationRepository,
    TemplateRepository,
    erase_user_rows,
)
from clonestore import TableSpec, hookimpl

if TYPE_CHECKING:
    from clonestore import Store

__all__ = ["CharacterPlatform"]


class CharacterPlatform:
    """Adds characters, character templates, the generation queue and the daily quota.

    Attaches ``store.characters``, ``store.character_templates``,
    ``store.generations`` and ``store.generation_quota``. ``tier_limits``
    overrides the generations allowed per UTC day for each subscription tier.
    """

    def __init__(self, tier_limits: Mapping[str, int] = TIER_LIMITS) -> None:
        self.tier_limits = dict(tier_limits)

    @hookimpl
    def clonestore_tables(self) -> Sequence[TableSpec]:
        """The platform's tables: created with the store's own."""
        return list(TABLES.values())

    @hookimpl
    def clonestore_store_opened(self, store: Store) -> None:
        """Attach the platform's repositories and quota to the store."""
        quota = DailyQuota(store, self.tier_limits)
        store.attach("generation_quota", quota)
        store.attach(
            "character_templates",
            TemplateRepository(store.repository_context, TABLES["character_templates"]),
        )
        store.attach("characters", CharacterRepository(store, TABLES["characters"]))
        store.attach("generations", GenerationRepository(store, TABLES["generations"], quota))

    @hookimpl
    def clonestore_export_user(self, store: Store, user_id: str) -> Mapping[str, Any]:
        """The user's characters (deleted ones too) and generations, for ``store.export_user``."""
        return {
            "characters": store.characters.find_many(where={"user_id": user_id}, with_deleted=True),
            "generations": store.generations.find_many(where={"user_id": user_id}),
        }

    @hookimpl
    def clonestore_erase_user(self, store: Store, user_id: str) -> None:
        """Remove the user's characters, generations and quota counters (``store.erase_user``)."""
        erase_user_rows(store, user_id)
