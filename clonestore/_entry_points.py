"""Plugins installed in the ``clonestore`` entry-point group, loaded once per process.

Built-in plugins are found exactly as a third party's are: by entry point.
"""

from __future__ import annotations

import importlib.metadata
import logging
from functools import cache

from clonestore.errors import ConfigurationError

__all__ = ["entry_point_plugins", "offers_storage"]

_log = logging.getLogger("clonestore")


@cache
def entry_point_plugins() -> tuple[dict[str, object], dict[str, ConfigurationError]]:
    """Every plugin in the ``clonestore`` entry-point group, loaded once: the loaded
    ones, and a :class:`ConfigurationError` for each one that cannot be imported.

    A broken plugin is logged and otherwise ignored until it matters: when it is
    asked for by name, or when no working plugin serves the URL's scheme. So one
    broken package does not stop every store in the process.
    """
    found: dict[str, object] = {}
    broken: dict[str, ConfigurationError] = {}
    for ep in importlib.metadata.entry_points(group="clonestore"):
        if ep.name in found or ep.name in broken:
            continue
        try:
            found[ep.name] = ep.load()
        except Exception as exc:
            package = ep.dist.name if ep.dist is not None else "an unknown package"
            broken[ep.name] = ConfigurationError(
                f"clonestore plugin {ep.name!r} ({ep.value}, installed by {package}) "
                f"cannot be loaded: {type(exc).__name__}: {exc}; reinstall or remove {package}",
                orig=exc,
            )
            _log.warning("%s", broken[ep.name])
    return found, broken


def offers_storage(plugin: object) -> bool:
    """Whether the plugin offers backends or shared stores: such plugins are always loaded."""
    return any(
        callable(getattr(plugin, hook, None))
        for hook in ("clonestore_backends", "clonestore_shared_stores")
    )
