"""The Store: opens a backend, composes plugins, owns transactions.

A store has its own pluggy ``PluginManager``. Plugins are found by entry point
in the group ``clonestore``, exactly as a third party's are: plugins that offer
backends (``clonestore_backends``) are always loaded; other plugins are enabled
by name (``plugins=["cache", "audit"]``) or passed as objects.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pluggy

from clonestore import hookspecs
from clonestore.errors import ClonestoreError, ConfigurationError, ValidationError
from clonestore.gateway import Gateway
from clonestore.operations import Context, current_context, pop_context, push_context
from clonestore.records import TABLES
from clonestore.repositories import (
    Clock,
    DocumentRepository,
    FaceModelRepository,
    MemoryRepository,
    RepositoryContext,
    SessionRepository,
    SpecializationRepository,
    TurnRepository,
    UserRepository,
    VoiceModelRepository,
    build_repositories,
)
from clonestore.schema import TableSpec
from clonestore.secrets import redact_url
from clonestore.spi import Backend
from clonestore.spi_versions import check_spi_version
from clonestore.tenancy import UserView
from clonestore.unit_of_work import UnitOfWork

__all__ = ["DEFAULT_URL", "Store", "open"]

#: Where ``clonestore.open()`` stores data when given no URL (``CLONESTORE_URL`` overrides).
DEFAULT_URL = "sqlite:///clonestore.db"

_log = logging.getLogger("clonestore")


def utc_now() -> datetime:
    """The default clock: the current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """The default id factory: a random UUID."""
    return str(uuid.uuid4())


@cache
def _entry_point_plugins() -> tuple[dict[str, object], dict[str, ConfigurationError]]:
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


def _offers_storage(plugin: object) -> bool:
    """Whether the plugin offers backends or shared stores: such plugins are always loaded."""
    return any(
        callable(getattr(plugin, hook, None))
        for hook in ("clonestore_backends", "clonestore_shared_stores")
    )


class Store:
    """An open clonestore: repositories over one backend, with plugins.

    Use :func:`clonestore.open` to make one. Thread-safe; close it (or use it as
    a context manager) when done.
    """

    users: UserRepository
    voice_models: VoiceModelRepository
    face_models: FaceModelRepository
    sessions: SessionRepository
    turns: TurnRepository
    documents: DocumentRepository
    memories: MemoryRepository
    specializations: SpecializationRepository

    def __init__(
        self,
        url: str,
        *,
        plugins: Sequence[str | object] = (),
        clock: Clock | None = None,
        id_factory: Callable[[], str] | None = None,
        create_tables: bool = True,
        **options: Any,
    ) -> None:
        #: The URL the store was opened on, its password replaced by ``***`` (safe to
        #: log or show); the raw URL stays private to the store and its backend.
        self.url = redact_url(url)
        self._url = url
        self.clock: Clock = clock or utc_now
        self.id_factory: Callable[[], str] = id_factory or new_id
        self.options = dict(options)
        self.services: dict[str, Any] = {}
        self._closed = False
        self.plugin_manager = self._make_plugin_manager(plugins)
        self.backend = self._open_backend(url, options)
        hook = self.plugin_manager.hook
        try:
            self.tables: dict[str, TableSpec] = dict(TABLES)
            for specs in self.plugin_manager.hook.clonestore_tables():
                for spec in specs:
                    if spec.name in self.tables and self.tables[spec.name] != spec:
                        raise ConfigurationError(f"two plugins define table {spec.name!r}")
                    self.tables[spec.name] = spec
            if create_tables:
                self.backend.create_tables(list(self.tables.values()))
            self.unit_of_work = UnitOfWork(
                self.backend.transaction,
                lambda ops: hook.clonestore_after_commit(store=self, ops=ops),
                lambda op, error: hook.clonestore_write_failed(store=self, op=op, error=error),
            )
            self.gateway = Gateway(self.backend, hook, self.unit_of_work, self)
            #: What repositories get of the store (a plugin's own repositories too).
            self.repository_context = RepositoryContext(
                gateway=self.gateway,
                unit=self.unit_of_work,
                clock=self.clock,
                id_factory=self.id_factory,
                tables=self.tables,
            )
            for name, repository in build_repositories(self.repository_context).items():
                setattr(self, name, repository)
            hook.clonestore_store_opened(store=self)
        except BaseException:
            self.backend.close()
            raise

    # ------------------------------------------------------------------ set-up

    def _make_plugin_manager(self, plugins: Sequence[str | object]) -> pluggy.PluginManager:
        plugins = _plugin_list(plugins)
        pm = pluggy.PluginManager("clonestore")
        pm.add_hookspecs(hookspecs)
        available, self._broken_plugins = _entry_point_plugins()
        for name, plugin in available.items():
            if _offers_storage(plugin):
                pm.register(plugin, name=name)
        for item in plugins:
            if isinstance(item, str):
                if item in self._broken_plugins:
                    raise self._broken_plugins[item]
                if item not in available:
                    known = ", ".join(sorted(available)) or "none"
                    raise ConfigurationError(f"unknown plugin {item!r}; installed plugins: {known}")
                if pm.get_plugin(item) is None:
                    pm.register(available[item], name=item)
            else:
                pm.register(item)
        return pm

    def _backend_factories(self) -> dict[str, Callable[..., Backend]]:
        """Backend factories by URL scheme (the first plugin offering a scheme wins)."""
        factories: dict[str, Callable[..., Backend]] = {}
        for offered in self.plugin_manager.hook.clonestore_backends():
            for name, factory in offered.items():
                factories.setdefault(name, factory)
        return factories

    def _open_backend(self, url: str, options: Mapping[str, Any]) -> Backend:
        scheme = urlsplit(url).scheme if "://" in url else ""
        factories = self._backend_factories()
        if scheme not in factories:
            known = ", ".join(f"{s}://" for s in sorted(factories)) or "none installed"
            broken = list(self._broken_plugins.values())
            why = "".join(f"; {error}" for error in broken)
            raise ConfigurationError(
                f"no backend for URL {redact_url(url)!r}; known schemes: {known}{why}",
                orig=broken[0].orig if broken else None,
            )
        backend = factories[scheme](url, **options)
        try:
            check_spi_version(backend)
        except BaseException:
            backend.close()
            raise
        return backend

    # ------------------------------------------------------------------ plugins

    @property
    def hook(self) -> Any:
        """The store's hook relay (``store.hook.clonestore_...``)."""
        return self.plugin_manager.hook

    def __getattr__(self, name: str) -> Any:
        # Services attached by plugins (store.cache, store.ratelimit, store.audit).
        services = self.__dict__.get("services")
        if services is not None and name in services:
            return services[name]
        if services is not None and not name.startswith("_"):
            available, broken = _entry_point_plugins()
            if name in available or name in broken:
                raise AttributeError(
                    f"store.{name} is provided by the {name!r} plugin, which this store was "
                    f"not opened with; open it with clonestore.open(url, plugins=[{name!r}])",
                    name=name,
                    obj=self,
                )
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def attach(self, name: str, service: Any) -> None:
        """Attach a plugin's service as ``store.<name>``."""
        if name in self.services or name in type(self).__dict__ or name in self.__dict__:
            raise ConfigurationError(f"store already has an attribute {name!r}")
        self.services[name] = service

    # ------------------------------------------------------------------ context and transactions

    @contextmanager
    def context(
        self,
        *,
        actor_id: str | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
        request_id: str | None = None,
    ) -> Iterator[Context]:
        """Who is acting, for plugins (audit) to see, in this thread or task."""
        ctx = Context(
            actor_id=actor_id, ip_address=ip_address, user_agent=user_agent, request_id=request_id
        )
        token = push_context(ctx)
        try:
            yield ctx
        finally:
            pop_context(token)

    @property
    def current_context(self) -> Context:
        """The context set by the innermost ``store.context(...)`` block."""
        return current_context()

    @property
    def in_transaction(self) -> bool:
        """Whether the calling thread or task is inside ``store.transaction()``."""
        return self.unit_of_work.active

    def transaction(self) -> AbstractContextManager[None]:
        """All-or-nothing on every backend; nested blocks are savepoints.

        ``clonestore_after_commit`` runs once the outermost block commits, with
        the writes that survived (those of rolled-back savepoints are dropped).
        ``clonestore_write_failed`` runs for the writes that failed inside the
        block once the outermost block has ended, committed or rolled back.
        """
        self._check_open()
        return self.unit_of_work.transaction()

    # ------------------------------------------------------------------ lifecycle

    def _check_open(self) -> None:
        if self._closed:
            raise ClonestoreError("this store is closed; open a new one with clonestore.open()")

    def health(self) -> dict[str, Any]:
        """``ok``, ``backend``, ``latency_ms`` and backend details; never raises."""
        return self.backend.health()

    def migrate(self) -> list[str]:
        """Apply pending migrations; returns the names applied (none on memory://)."""
        self._check_open()
        migrate = getattr(self.backend, "migrate", None)
        return list(migrate()) if migrate is not None else []

    def migration_status(self) -> list[dict[str, Any]]:
        """Every known migration with ``name`` and ``applied`` (empty on memory://)."""
        status = getattr(self.backend, "migration_status", None)
        return list(status()) if status is not None else []

    def export_user(self, user_id: str) -> dict[str, Any]:
        """Everything stored about a user, plugins included, as JSON-ready data."""
        return self.users.export(user_id)

    def erase_user(self, user_id: str) -> dict[str, int]:
        """Remove everything about a user (right to be forgotten); rows removed per table."""
        return self.users.erase(user_id)

    def for_user(self, user_id: str) -> UserView:
        """The repositories limited to one user's rows (see :mod:`clonestore.tenancy`):
        another user's rows are :class:`NotFound`, lists and counts see only the owner's."""
        self._check_open()
        return UserView(self.repository_context.repositories, self.unit_of_work, user_id)

    def close(self) -> None:
        """Close the store and its backend. Idempotent."""
        if self._closed:
            return
        try:
            self.plugin_manager.hook.clonestore_store_closed(store=self)
        finally:
            self._closed = True
            self.unit_of_work.close()
            self.backend.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<clonestore.Store {self.url} {state}>"


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
    **options: Any,
) -> Store:
    """Open a store on ``url`` (default: ``$CLONESTORE_URL`` or a SQLite file).

    :param plugins: plugin names (entry points in group ``clonestore``) or objects.
    :param clock: returns the current aware datetime; injectable for tests.
    :param id_factory: returns new ids (UUID strings); injectable for tests.
    :param create_tables: create missing tables on open.
    :param options: backend options (``pool_size``, ``connect_timeout``...).
    """
    if url is None:
        url = os.environ.get("CLONESTORE_URL") or DEFAULT_URL
    if not isinstance(url, str):
        raise ValidationError(f"url must be a string, got {type(url).__name__}")
    return Store(
        url,
        plugins=plugins,
        clock=clock,
        id_factory=id_factory,
        create_tables=create_tables,
        **options,
    )
