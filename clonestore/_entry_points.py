"""Plugins installed in the ``clonestore`` entry-point group, loaded once per process.

Built-in plugins are found exactly as a third party's are: by entry point.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from functools import cache

from clonestore.errors import ConfigurationError

__all__ = ["entry_point_plugins", "offers_storage"]

_log = logging.getLogger("clonestore")


@cache
def entry_point_plugins() -> tuple[dict[str, object], dict[str, ConfigurationError]]:
    """Every plugin in the ``clonestore`` entry-point group, loaded once: the loaded
    ones, and a :class:`ConfigurationError` for each one that cannot be imported.

    A broken plugin is ignored until it matters: when it is asked for by name, or
    when no working plugin serves the URL's scheme. So one broken package does not
    stop every store in the process. A plugin that cannot import because an optional
    extra of its package is not installed (``metrics`` without ``prometheus_client``)
    is not broken, only not enabled: it is reported, with the ``pip install`` that
    enables it, only when asked for. Any other failure is also logged as a warning.
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
            extra = _missing_extra(ep.dist, exc, ep.name)
            if extra is not None:
                broken[ep.name] = ConfigurationError(
                    f"clonestore plugin {ep.name!r} needs the {extra!r} extra of {package} "
                    f"({type(exc).__name__}: {exc}); install it: "
                    f"pip install '{package}[{extra}]'",
                    orig=exc,
                )
                _log.debug("%s", broken[ep.name])
                continue
            broken[ep.name] = ConfigurationError(
                f"clonestore plugin {ep.name!r} ({ep.value}, installed by {package}) "
                f"cannot be loaded: {type(exc).__name__}: {exc}; reinstall or remove {package}",
                orig=exc,
            )
            _log.warning("%s", broken[ep.name])
    return found, broken


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _missing_extra(
    dist: importlib.metadata.Distribution | None, exc: Exception, plugin: str
) -> str | None:
    """The extra of ``dist`` that requires the module whose absence ``exc`` reports
    (``metrics`` for ``No module named 'prometheus_client'``; the extra named like the
    plugin when several do), else ``None``."""
    if dist is None or not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    module = _normalized(exc.name.split(".")[0])
    extras = []
    for requirement in dist.requires or ():
        found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)[^;]*;.*\bextra\s*==\s*[\"']([^\"']+)",
                         requirement)
        # A distribution's name often is its module's (prometheus-client), or starts
        # with it (psycopg2-binary).
        if found and _normalized(found.group(1)).startswith(module):
            extras.append(found.group(2))
    return plugin if plugin in extras else (extras[0] if extras else None)


def offers_storage(plugin: object) -> bool:
    """Whether the plugin offers backends or shared stores: such plugins are always loaded."""
    return any(
        callable(getattr(plugin, hook, None))
        for hook in ("clonestore_backends", "clonestore_shared_stores")
    )
