"""How a store opens: plugins found by entry point, a plugin manager of its own
with every hookspec, the backend serving the URL, composed into a :class:`Store`.

Plugins are found by entry point in the group ``clonestore``, exactly as a
third party's are: plugins that offer backends (``clonestore_backends``) or
shared stores (``clonestore_shared_stores``) are always loaded; other plugins
are enabled by name (``plugins=["cache", "audit"]``) or passed as objects.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pluggy

from clonestore import hookspecs
from clonestore._entry_points import entry_point_plugins, offers_storage
from clonestore._store import Store
from clonestore.errors import ConfigurationError, ValidationError
from clonestore.plugin_helpers import refuses_scheme
from clonestore.repositories import Clock
from clonestore.secrets import redact_url
from clonestore.spi import API_VERSION, Backend, check_api_version

__all__ = [
    "DEFAULT_URL",
    "BackendFactories",
    "backend_factories",
    "default_url",
    "make_plugin_manager",
    "new_id",
    "open",
    "open_backend",
    "open_store",
    "utc_now",
]

#: Where ``clonestore.open()`` stores data when given no URL and the environment names
#: none (see :func:`default_url`).
DEFAULT_URL = "sqlite:///clonestore.db"


def default_url() -> str:
    """The URL of a store opened without one: ``$CLONESTORE_URL``, else ``$DATABASE_URL``
    (the variable Prisma, and so the original application, reads; its SQLite form
    ``file:./dev.db`` is ``sqlite:///./dev.db``), else :data:`DEFAULT_URL`."""
    url = os.environ.get("CLONESTORE_URL")
    if url:
        return url
    url = os.environ.get("DATABASE_URL")
    if url:
        return "sqlite:///" + url[len("file:") :] if url.startswith("file:") else url
    return DEFAULT_URL


def utc_now() -> datetime:
    """The default clock: the current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """The default id factory: a random UUID."""
    return str(uuid.uuid4())


def make_plugin_manager(plugins: Sequence[str | object]) -> pluggy.PluginManager:
    """A new plugin manager with every hookspec, the storage plugins and ``plugins``
    (names of entry points in group ``clonestore``, or plugin objects)."""
    plugins = _plugin_list(plugins)
    pm = pluggy.PluginManager("clonestore")
    pm.add_hookspecs(hookspecs)
    available, broken = entry_point_plugins()
    for name, plugin in available.items():
        if offers_storage(plugin):
            pm.register(plugin, name=name)
    for item in plugins:
        if isinstance(item, str):
            if item in broken:
                raise broken[item]
            if item not in available:
                known = ", ".join(sorted(available)) or "none"
                raise ConfigurationError(f"unknown plugin {item!r}; installed plugins: {known}")
            if pm.get_plugin(item) is None:
                pm.register(available[item], name=item)
        else:
            pm.register(item)
    return pm


#: Backend factories by URL scheme, from a store's plugin manager.
BackendFactories = Callable[[pluggy.PluginManager], Mapping[str, Callable[..., Backend]]]


def backend_factories(pm: pluggy.PluginManager) -> dict[str, Callable[..., Backend]]:
    """Backend factories by URL scheme (``clonestore_backends``; the first plugin
    offering a scheme wins)."""
    factories: dict[str, Callable[..., Backend]] = {}
    for offered in pm.hook.clonestore_backends():
        for name, factory in offered.items():
            factories.setdefault(name, factory)
    return factories


def open_backend(
    pm: pluggy.PluginManager,
    url: str,
    options: Mapping[str, Any],
    factories: BackendFactories = backend_factories,
) -> Backend:
    """The backend for ``url`` from the factories ``factories(pm)`` offers for its
    scheme, made with ``options``; its API version checked."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    offered = factories(pm)
    if scheme not in offered:
        listed = (s for s, factory in offered.items() if not refuses_scheme(factory))
        known = ", ".join(f"{s}://" for s in sorted(listed)) or "none installed"
        broken = list(entry_point_plugins()[1].values())
        why = "".join(f"; {error}" for error in broken)
        raise ConfigurationError(
            f"no backend for URL {redact_url(url)!r}; known schemes: {known}{why}",
            orig=broken[0].orig if broken else None,
        )
    backend = offered[scheme](url, **options)
    try:
        name = getattr(backend, "name", type(backend).__name__)
        check_api_version(f"the {name} backend", getattr(backend, "api_version", API_VERSION))
    except BaseException:
        backend.close()
        raise
    return backend


def _plugin_list(plugins: Any) -> list[str | object]:
    """``open()``'s ``plugins`` as a list: a string is a comma-separated list of names
    (``"cache,audit"``, as ``clonestore migrate --plugins`` takes them)."""
    if isinstance(plugins, str):
        return [name.strip() for name in plugins.split(",") if name.strip()]
    if isinstance(plugins, (bytes, Mapping)) or not isinstance(plugins, Iterable):
        raise ConfigurationError(
            "plugins must be a list of plugin names or objects, e.g. plugins=['cache']; "
            f"got {type(plugins).__name__}"
        )
    return list(plugins)


def open(
    url: str | None = None,
    *,
    plugins: Sequence[str | object] = (),
    clock: Clock | None = None,
    id_factory: Callable[[], str] | None = None,
    create_tables: bool = True,
    check_tables: bool = True,
    **options: Any,
) -> Store:
    """Open a store on ``url`` (default: ``$CLONESTORE_URL``, else ``$DATABASE_URL``, else
    a SQLite file: :func:`default_url`).

    :param plugins: plugin names (entry points in group ``clonestore``) or objects.
    :param clock: returns the current aware datetime; injectable for tests.
    :param id_factory: returns new ids (UUID strings); injectable for tests.
    :param create_tables: apply pending migrations (the plugins' too) and create
        missing tables on open. Without it, a database with pending core migrations
        is read but not written: every write raises :class:`MigrationsPending`, naming
        ``clonestore migrate``, until they have run.
    :param check_tables: with ``create_tables=False``, refuse to open (a
        ``ConfigurationError`` naming the command to run) when a plugin's tables are
        missing, rather than fail at the first write.
    :param options: backend options (``pool_size``, ``connect_timeout``...).
    """
    if url is None:
        url = default_url()
    if not isinstance(url, str):
        raise ValidationError(f"url must be a string, got {type(url).__name__}")
    return open_store(
        url,
        plugins=plugins,
        clock=clock,
        id_factory=id_factory,
        create_tables=create_tables,
        check_tables=check_tables,
        options=options,
    )


def open_store(
    url: str,
    *,
    plugins: Sequence[str | object] = (),
    clock: Clock | None = None,
    id_factory: Callable[[], str] | None = None,
    create_tables: bool = True,
    check_tables: bool = True,
    options: Mapping[str, Any] | None = None,
    factories: BackendFactories = backend_factories,
) -> Store:
    """The steps of :func:`open` once ``url`` is known: the plugin manager, the backend
    (from ``factories(pm)``, by default the plugins' ``clonestore_backends``), and the
    store composed of them. :func:`clonestore.open_async` passes its own factories."""
    pm = make_plugin_manager(plugins)
    options = dict(options or {})
    backend = open_backend(pm, url, options, factories)
    return Store(
        url,
        pm,
        backend,
        clock=clock or utc_now,
        id_factory=id_factory or new_id,
        create_tables=create_tables,
        check_tables=check_tables,
        options=options,
    )
