"""The Character Creation Platform, built on clonestore without changing it.

Users create characters (a name, a prompt, a style and tags), optionally from
templates, publish them to a searchable gallery, and queue image generations
that workers claim and finish. Each user may ask for a number of generations
per UTC day that depends on their subscription tier.

* :mod:`character_platform.records`: records (``clonestore.record``) and tables;
* :mod:`character_platform.repositories`: repositories over ``clonestore.Repository``;
* :mod:`character_platform.quota`: the atomic daily quota;
* :mod:`character_platform.plugin`: the plugin that adds it all to a store.
"""

from __future__ import annotations

from character_platform.plugin import CharacterPlatform
from character_platform.quota import TIER_LIMITS, DailyQuota, QuotaExceeded, QuotaStatus, utc_day
from character_platform.records import (
    GENERATION_STATUSES,
    STYLE_TYPES,
    TABLES,
    Character,
    CharacterTemplate,
    Generation,
)
from character_platform.repositories import (
    CharacterRepository,
    CreatorStatistics,
    GenerationRepository,
    TemplateRepository,
)

__all__ = [
    "GENERATION_STATUSES",
    "STYLE_TYPES",
    "TABLES",
    "TIER_LIMITS",
    "Character",
    "CharacterPlatform",
    "CharacterRepository",
    "CharacterTemplate",
    "CreatorStatistics",
    "DailyQuota",
    "Generation",
    "GenerationRepository",
    "QuotaExceeded",
    "QuotaStatus",
    "TemplateRepository",
    "utc_day",
]
