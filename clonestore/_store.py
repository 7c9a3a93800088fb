"""The Store: repositories over one backend, with plugins.

A store has its own pluggy ``PluginManager`` and its own backend, both made by
:func:`clonestore.open` (see :mod:`clonestore._opening`); its transactions are
its :class:`~clonestore._unit_of_work.UnitOfWork`'s, and every read and write
of its repositories passes its :class:`~clonestore._gateway.Gateway`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, cast

import attrs
import pluggy

from clonestore._capabilities import check_capabilities
from clonestore._entry_points import entry_point_plugins, offers_storage
from clonestore._gateway import Gateway
from clonestore._operations import (
    Context,
    Operation,
    current_context,
    pop_context,
    push_context,
)
from clonestore._tenancy import UserView
from clonestore._unit_of_work import UnitOfWork
from clonestore.errors import (
    ClonestoreError,
    ConfigurationError,
    MigrationsPending,
    StorageUnavailable,
)
from clonestore.maintenance import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TIME_LIMIT,
    MaintenanceReport,
    MaintenanceTask,
    maintain,
    maintenance_tasks,
)
from clonestore.records import SYSTEM_TABLES, TABLES
from clonestore.repositories import (
    Catalogues,
    Clock,
    Repositories,
    RepositoryContext,
    build_repositories,
)
from clonestore.schema import DEFAULT_LIST_ITEMS, TableSpec
from clonestore.secrets import redact_url
from clonestore.services import AuditService, CacheService, RateLimitService
from clonestore.spi import Backend, Migrations, Scrub, VectorDimensions, capabilities_of

__all__ = ["Store"]

#: The action of the last write of ``erase_user`` (the user's row): after it commits,
#: the backend scrubs its files.
_ERASURE = "user.erase_user"


class Store(Repositories, Catalogues):
    """An open clonestore: repositories over one backend, with plugins.

    Use :func:`clonestore.open` to make one. Thread-safe; close it (or use it as
    a context manager) when done.
    """

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
            self.tables: dict[str, TableSpec] = {**TABLES, **SYSTEM_TABLES}
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
            #: The backend's numbered, recorded migrations (capability ``migrations``),
            #: or None: a schema nothing need migrate (memory://).
            self._migrations: Migrations | None = (
                cast(Migrations, backend) if "migrations" in capabilities_of(backend) else None
            )
            #: The longest vector this store keeps (the smallest limit the backend
            #: declares, ``vector_dimensions``), or None where only the columns' own
            #: ``max_length`` applies. Every vector column is lowered to it.
            self.max_vector_dimensions = _vector_limit(self.backend)
            if self.max_vector_dimensions is not None:
                self.tables = _limit_vectors(self.tables, self.max_vector_dimensions)
            if create_tables:
                if self.plugin_migrations and self._migrations is not None:
                    self._migrations.migrate(plugins=self.plugin_migrations)
                self.backend.create_tables(list(self.tables.values()))
            elif check_tables:
                self._check_plugin_tables()
            self.unit_of_work = UnitOfWork(
                self.backend.transaction,
                self._committed,
                lambda op, error: hook.clonestore_write_failed(store=self, op=op, error=error),
                (lambda ops: hook.clonestore_before_commit(store=self, ops=ops))
                if hook.clonestore_before_commit.get_hookimpls()
                else None,
            )
            self.gateway = Gateway(self.backend, hook, self.unit_of_work, self)
            #: The core migrations pending at open (create_tables=False): writes refused.
            #: None: the server could not be reached at open; asked at the first write.
            self._pending: tuple[str, ...] | None = ()
            if not create_tables:
                try:
                    self._pending = tuple(self._pending_core_migrations())
                except StorageUnavailable:  # opening does not need the server (health)
                    self._pending = None
            if self._pending is None or self._pending:
                self.gateway.refuse_writes = self._refuse_write
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
        plugin_specs = [
            spec
            for name, spec in self.tables.items()
            if name not in TABLES and name not in SYSTEM_TABLES
        ]
        if self._migrations is None or not plugin_specs:
            return
        missing = self._migrations.missing_tables(plugin_specs)
        if missing:
            names = ",".join(self._enabled_plugin_names()) or "NAMES"
            raise ConfigurationError(
                f"{self.url}: the plugins' tables {', '.join(missing)} do not exist; create "
                f"them with: clonestore migrate --url {self.url} --plugins {names} "
                "(or open with create_tables=True)"
            )

    def _pending_core_migrations(self) -> list[str]:
        """The core migrations not applied to the database (none on memory://)."""
        if self._migrations is None:
            return []
        return [row["name"] for row in self._migrations.migration_status() if not row["applied"]]

    def _refuse_write(self, action: str) -> None:
        """Refuse ``action``: this store was opened with ``create_tables=False`` on a
        database with pending core migrations (``self._pending``). Some convert stored
        rows in place (0009: float64 vector blobs to float32) and cannot tell rows the
        current version wrote, so the store writes nothing until its own ``migrate()``
        (or a store opened after they ran). Not asked again per write: a write may be
        inside a transaction, where the migration history cannot be read on SQLite."""
        if self._pending is None:  # not known at open (the server was unreachable)
            self._pending = tuple(self._pending_core_migrations())
            if not self._pending:
                self.gateway.refuse_writes = None
                return
        plugins = f" --plugins {','.join(self._enabled_plugin_names())}" if self._plugins() else ""
        raise MigrationsPending(
            f"{self.url}: {action} refused: the database had {len(self._pending)} core "
            f"migration(s) pending when this store was opened ({', '.join(self._pending)}), "
            f"which may convert stored rows in place, so it writes nothing; run: clonestore "
            f"migrate --url {self.url}{plugins}, then open the store again (or call "
            "store.migrate(), or open with create_tables=True)",
            pending=self._pending,
        )

    def _enabled_plugin_names(self) -> list[str]:
        available, _ = entry_point_plugins()
        names = [
            name
            for name, plugin in self.plugin_manager.list_name_plugin()
            if name in available and not offers_storage(plugin)
        ]
        return names or sorted(self.plugin_migrations)

    def _plugins(self) -> dict[str, str] | None:
        """The enabled plugins' migration packages, or None when there are none."""
        return self.plugin_migrations or None

    def migrate(self, to: str | None = None) -> list[str]:
        """Apply pending migrations, the core's then the enabled plugins' (up to the one
        named ``to``, e.g. ``"0002_original_schema"`` or ``"audit/0001_initial"``),
        then create any other missing table; the names applied (none on memory://).

        A store opened with ``create_tables=False`` on a database with pending core
        migrations refuses writes (:class:`MigrationsPending`) until they have run;
        ``migrate()`` ends that for this store, whatever ``to`` (the caller chose the
        schema)."""
        self._check_open()
        if self._migrations is None:
            return []
        applied = self._migrations.migrate(plugins=self._plugins(), target=to)
        if to is None:
            self.backend.create_tables(list(self.tables.values()))
        # The schema is now the one this store chose (to= a past migration included, as
        # tests of migrations do): it no longer refuses writes (see _refuse_write).
        self.gateway.refuse_writes = None
        self._pending = ()
        return list(applied)

    def migration_status(self) -> list[dict[str, Any]]:
        """Every known migration, the enabled plugins' included, with ``name``,
        ``plugin``, ``applied`` and ``applied_at`` (empty on memory://)."""
        if self._migrations is None:
            return []
        return list(self._migrations.migration_status(plugins=self._plugins()))

    def migration_plan(self, to: str | None = None) -> list[tuple[str, list[str]]]:
        """``(name, SQL statements)`` of each pending migration, changing nothing."""
        self._check_open()
        if self._migrations is None:
            return []
        return list(self._migrations.migration_plan(plugins=self._plugins(), target=to))

    def downgrade(self, to: str | None = None) -> list[str]:
        """Undo migrations with their ``down``: those applied after ``to``, else the
        newest core migration; the names reverted, newest first."""
        self._check_open()
        if self._migrations is None:
            return []
        return list(self._migrations.downgrade(plugins=self._plugins(), to=to))

    def _committed(self, ops: Sequence[Operation]) -> None:
        """After the outermost commit: ``clonestore_after_commit``, then, after an
        erasure, the backend's ``scrub`` (capability ``scrub``)."""
        self.plugin_manager.hook.clonestore_after_commit(store=self, ops=ops)
        if "scrub" in capabilities_of(self.backend) and any(
            op.action == _ERASURE for op in ops
        ):
            cast(Scrub, self.backend).scrub()

    def export_user(self, user_id: str) -> dict[str, Any]:
        """Everything stored about a user, plugins included, as JSON-ready data."""
        return self.users.export(user_id)

    def erase_user(self, user_id: str) -> dict[str, int]:
        """Remove everything about a user (right to be forgotten); rows removed per table."""
        return self.users.erase(user_id)

    def dump(
        self,
        file: str | os.PathLike[str],
        *,
        batch_size: int = 2000,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Write every table of the store (the core's and its plugins': ids, timestamps,
        soft-deleted rows, vectors, the audit chains) to ``file``: versioned JSON Lines,
        gzip (``.zst``: zstd; ``.jsonl``: plain), that :meth:`load` reads on any backend.

        ``progress(table, rows_done, rows_total)`` is called after each batch. The file
        appears complete or not at all. Returns ``file``, ``dump_id``, ``rows`` (per
        table), ``total_rows``, ``bytes``, ``seconds``. Take it from a database no one
        writes to (or use the engine's own backup for a live one): tables are read one
        after another. :raises DumpError: on a bad ``batch_size`` or compression.
        """
        self._check_open()
        from clonestore._transfer import dump_store

        return dump_store(self, file, batch_size=batch_size, progress=progress)

    def load(
        self,
        file: str | os.PathLike[str],
        *,
        batch_size: int = 2000,
        allow_non_empty: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Load a :meth:`dump` into this store, rows exactly as dumped (no hook runs: no
        audit row, no cache change), tables in dependency order, ``batch_size`` rows per
        transaction with its progress mark: re-run after an interruption, it continues.

        Open the store with the plugins the dump was taken with (their tables must
        exist). Reopen it (or open a new one) before using the loaded data, so that no
        plugin keeps state from before. Returns ``file``, ``dump_id``, ``rows`` (per
        table), ``total_rows``, ``resumed_from``, ``seconds``.

        :raises DumpError: the file is damaged, truncated, of a newer format, or does
            not fit the store (checked before anything is written); the store holds rows
            this load did not write (unless ``allow_non_empty``); or a batch failed
            (``reason="interrupted"``: run the same load again to continue).
        """
        self._check_open()
        if self.gateway.refuse_writes is not None:
            self.gateway.refuse_writes("load")
        from clonestore._transfer import load_store

        return load_store(
            self, file, batch_size=batch_size, allow_non_empty=allow_non_empty, progress=progress
        )

    def maintain(
        self,
        *,
        tasks: Iterable[str] | None = None,
        retention: Mapping[str, Any] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        time_limit: float = DEFAULT_TIME_LIMIT,
        progress: Callable[[str, int], None] | None = None,
    ) -> MaintenanceReport:
        """Run every due maintenance task (or those named in ``tasks``): the core's
        ``soft_deleted`` and the enabled plugins' (``cache.expired``,
        ``ratelimit.windows``, ``audit.purge``...), one after another.

        :param retention: task name -> age in days (or a ``timedelta``) past which
            its rows go, overriding the task's default (``audit.purge``: 90 days;
            ``soft_deleted`` runs only when given one).
        :param batch_size: rows per transaction.
        :param time_limit: seconds each task may run; a task stopped by it is
            reported not ``complete`` and resumes on the next run.
        :param progress: called as ``progress(task, removed_so_far)`` after each batch.
        :return: what each task did; ``ran`` is False (nothing done) when another
            process holds the maintenance lease.
        """
        self._check_open()
        return maintain(
            self,
            tasks=tasks,
            retention=retention,
            batch_size=batch_size,
            time_limit=time_limit,
            progress=progress,
        )

    def maintenance_tasks(self) -> list[MaintenanceTask]:
        """Every task :meth:`maintain` runs, with its default retention."""
        return maintenance_tasks(self)

    def for_user(self, user_id: str) -> UserView:
        """The repositories limited to one user's rows (see :mod:`clonestore._tenancy`):
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


def _vector_limit(backend: Backend) -> int | None:
    """The smallest vector-dimension limit ``backend`` declares (None: it declares none)."""
    if "vector_dimensions" not in capabilities_of(backend):
        return None
    limits = cast(VectorDimensions, backend).vector_dimension_limits()
    return min(limits.values()) if limits else None


def _limit_vectors(tables: Mapping[str, TableSpec], limit: int) -> dict[str, TableSpec]:
    """``tables`` with every vector column's ``max_length`` lowered to ``limit``."""
    out = {}
    for name, spec in tables.items():
        columns = tuple(
            attrs.evolve(c, max_length=min(limit, c.max_length or DEFAULT_LIST_ITEMS))
            if c.kind == "vector" and (c.max_length or DEFAULT_LIST_ITEMS) > limit
            else c
            for c in spec.columns
        )
        out[name] = spec if columns == spec.columns else attrs.evolve(spec, columns=columns)
    return out
