"""The Store: repositories over one backend, with plugins.

A store has its own pluggy ``PluginManager`` and its own backend, both made by
:func:`clonestore.open` (see :mod:`clonestore.opening`); its transactions are
its :class:`~clonestore.unit_of_work.UnitOfWork`'s, and every read and write
of its repositories passes its :class:`~clonestore.gateway.Gateway`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

import pluggy

from clonestore._capabilities import check_capabilities
from clonestore._entry_points import entry_point_plugins, offers_storage
from clonestore.errors import ClonestoreError, ConfigurationError
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
from clonestore.services import AuditService, CacheService, RateLimitService
from clonestore.spi import Backend
from clonestore.tenancy import UserView
from clonestore.unit_of_work import UnitOfWork

__all__ = ["Store"]


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
    #: The built-in plugins' services, when the store was opened with them (else
    #: reading one raises AttributeError naming the plugin). Typed by the
    #: protocols of :mod:`clonestore.services`; other plugins' services are in
    #: :attr:`services`.
    cache: CacheService
    ratelimit: RateLimitService
    audit: AuditService

    def __init__(
        self,
        url: str,
        plugin_manager: pluggy.PluginManager,
        backend: Backend,
        *,
        clock: Clock,
        id_factory: Callable[[], str],
        create_tables: bool = True,
        check_tables: bool = True,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """Compose an opened backend and a plugin manager into a store (closing the
        backend if that fails); :func:`clonestore.open` is how a store is made."""
        #: The URL the store was opened on, its password replaced by ``***`` (safe to
        #: log or show); the raw URL stays private to the store and its backend.
        self.url = redact_url(url)
        self._url = url
        self.clock: Clock = clock
        self.id_factory: Callable[[], str] = id_factory
        self.options = dict(options or {})
        self.services: dict[str, Any] = {}
        self._closed = False
        self.plugin_manager = plugin_manager
        self.backend = backend
        hook = self.plugin_manager.hook
        try:
            self.tables: dict[str, TableSpec] = dict(TABLES)
            for specs in self.plugin_manager.hook.clonestore_tables():
                for spec in specs:
                    if spec.name in self.tables and self.tables[spec.name] != spec:
                        raise ConfigurationError(f"two plugins define table {spec.name!r}")
                    self.tables[spec.name] = spec
            #: Plugin name -> package of its migration scripts (``clonestore_migrations``).
            self.plugin_migrations: dict[str, str] = {}
            for declared in hook.clonestore_migrations():
                self.plugin_migrations.update(declared)
            check_capabilities(self.plugin_manager, self.backend, self.tables, url)
            if create_tables:
                if self.plugin_migrations and hasattr(self.backend, "migrate"):
                    self.backend.migrate(plugins=self.plugin_migrations)
                self.backend.create_tables(list(self.tables.values()))
            elif check_tables:
                self._check_plugin_tables()
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

    # ------------------------------------------------------------------ plugins

    @property
    def hook(self) -> Any:
        """The store's hook relay (``store.hook.clonestore_...``)."""
        return self.plugin_manager.hook

    if not TYPE_CHECKING:  # type checkers see only the declared attributes: a typo is an error

        def __getattr__(self, name: str) -> Any:
            # Services attached by plugins (store.cache, store.ratelimit, store.audit).
            services = self.__dict__.get("services")
            if services is not None and name in services:
                return services[name]
            if services is not None and not name.startswith("_"):
                available, broken = entry_point_plugins()
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

    def _check_plugin_tables(self) -> None:
        """Refuse to open (with ``create_tables=False``) when plugin tables are missing."""
        missing_tables = getattr(self.backend, "missing_tables", None)
        plugin_specs = [spec for name, spec in self.tables.items() if name not in TABLES]
        if missing_tables is None or not plugin_specs:
            return
        missing = missing_tables(plugin_specs)
        if missing:
            names = ",".join(self._enabled_plugin_names()) or "NAMES"
            raise ConfigurationError(
                f"{self.url}: the plugins' tables {', '.join(missing)} do not exist; create "
                f"them with: clonestore migrate --url {self.url} --plugins {names} "
                "(or open with create_tables=True)"
            )

    def _enabled_plugin_names(self) -> list[str]:
        available, _ = entry_point_plugins()
        names = [
            name
            for name, plugin in self.plugin_manager.list_name_plugin()
            if name in available and not offers_storage(plugin)
        ]
        return names or sorted(self.plugin_migrations)

    def _schema_call(self, method: str, default: Any, **kwargs: Any) -> Any:
        """A backend's optional schema method, given the plugins' migrations."""
        call = getattr(self.backend, method, None)
        if call is None:
            return default
        if self.plugin_migrations:
            kwargs["plugins"] = self.plugin_migrations
        return call(**{k: v for k, v in kwargs.items() if v is not None})

    def migrate(self, to: str | None = None) -> list[str]:
        """Apply pending migrations, the core's then the enabled plugins' (up to the one
        named ``to``, e.g. ``"0002_original_schema"`` or ``"audit/0001_initial"``),
        then create any other missing table; the names applied (none on memory://)."""
        self._check_open()
        applied = list(self._schema_call("migrate", [], target=to))
        if to is None and hasattr(self.backend, "migrate"):
            self.backend.create_tables(list(self.tables.values()))
        return applied

    def migration_status(self) -> list[dict[str, Any]]:
        """Every known migration, the enabled plugins' included, with ``name``,
        ``plugin``, ``applied`` and ``applied_at`` (empty on memory://)."""
        return list(self._schema_call("migration_status", []))

    def migration_plan(self, to: str | None = None) -> list[tuple[str, list[str]]]:
        """``(name, SQL statements)`` of each pending migration, changing nothing."""
        self._check_open()
        return list(self._schema_call("migration_plan", [], target=to))

    def downgrade(self, to: str | None = None) -> list[str]:
        """Undo migrations with their ``down``: those applied after ``to``, else the
        newest core migration; the names reverted, newest first."""
        self._check_open()
        return list(self._schema_call("downgrade", [], to=to))

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
