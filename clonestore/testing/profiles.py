"""Hypothesis settings profiles for the kit's differential properties: ``dev`` and ``ci``.

``dev`` (50 examples per property) is the default; ``ci`` (300 examples,
derandomized so a CI run is reproducible, failing examples printed as blobs)
is chosen when ``CI`` is set, and ``HYPOTHESIS_PROFILE`` names either one (or a
suite's own). ``--hypothesis-profile=NAME`` picks one on the command line.

The kit's pytest plugin registers both when pytest starts, unless a profile
of the same name is already registered (a suite's own wins; hypothesis's
built-in ``ci`` is replaced only when the kit's properties load, so other
suites keep it), with the example
database of ``dev`` under pytest's cache directory
(``.pytest_cache/d/clonestore-hypothesis``), or none when the cache is
disabled (``ci``, derandomized, keeps none): never next to the installed package.
Needs ``hypothesis``.
"""

from __future__ import annotations

import os
from typing import Any, Final

from hypothesis import HealthCheck, settings
from hypothesis.database import ExampleDatabase
from hypothesis.errors import InvalidArgument

__all__ = ["PROFILES", "default_profile", "load_default_profile", "register_profiles"]

#: Settings of each profile (the example database is added when registering).
PROFILES: Final[dict[str, dict[str, Any]]] = {
    "dev": {"max_examples": 50, "deadline": None},
    "ci": {
        "max_examples": 300,
        "deadline": None,
        "derandomize": True,
        "print_blob": True,
        "suppress_health_check": [HealthCheck.too_slow],
    },
}


def _hypothesis_builtin(name: str) -> settings | None:
    """Hypothesis's own profile of this name (it ships a ``ci`` of 100 examples)."""
    try:
        from hypothesis import _settings
    except ImportError:  # pragma: no cover - a future hypothesis without it
        return None
    builtin = getattr(_settings, name.upper(), None)
    return builtin if isinstance(builtin, settings) else None


def register_profiles(
    database: ExampleDatabase | None = None, *, replace_builtin: bool = False
) -> None:
    """Register ``dev`` and ``ci`` with this example database, each unless a profile of
    that name exists (a suite's own wins; hypothesis's own ``ci`` too, unless
    ``replace_builtin``)."""
    for name, values in PROFILES.items():
        try:
            existing = settings.get_profile(name)
        except InvalidArgument:
            existing = None
        if existing is None or (replace_builtin and existing is _hypothesis_builtin(name)):
            # A derandomized run replays the same examples: it keeps no database.
            kept = None if values.get("derandomize") else database
            settings.register_profile(name, database=kept, **values)


def default_profile() -> str:
    """``HYPOTHESIS_PROFILE`` if set, else ``ci`` when ``CI`` is set, else ``dev``."""
    chosen = os.environ.get("HYPOTHESIS_PROFILE")
    if chosen:
        return chosen
    return "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev"


def load_default_profile() -> str:
    """For the kit's properties: load :func:`default_profile` unless a profile was
    chosen already (``--hypothesis-profile``, a conftest); return the one in force.

    Hypothesis's own ``ci`` (which it loads by itself in a CI environment, or
    ``--hypothesis-profile=ci`` picked before the kit replaced it) becomes the
    kit's ``ci``, or what ``HYPOTHESIS_PROFILE`` names.
    """
    current = settings.get_current_profile_name()
    builtin = settings.default is _hypothesis_builtin(current)
    register_profiles(replace_builtin=True)
    if current == "default":
        settings.load_profile(default_profile())
    elif builtin:
        settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or current)
    return settings.get_current_profile_name()
