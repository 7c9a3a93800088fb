"""The clonestore pytest plugin (entry point ``pytest11``: ``clonestore``).

Adds ``--clonestore-url`` (ini: ``clonestore_url``) and the fixtures described
in :mod:`clonestore.testing`: ``clonestore_url``, ``store_factory``,
``store``, ``clonestore_plugins``, ``clonestore_store``,
``clonestore_async_store``, ``differential_stores`` and ``audited_stores``. ``--clonestore-async``
runs every store of the kit through :func:`clonestore.open_async` (the
``clonestore_async`` fixture, which a suite may also parametrise to run both).
When hypothesis is installed it also registers the ``dev`` and ``ci`` profiles
of :mod:`clonestore.testing.profiles`.

The kit's modules are named ``test_*.py``: pytest collects them as it collects
any test module, ``contract/test_users.py::test_...`` under ``pytest --pyargs
clonestore.testing``, with their assertions rewritten, so a failing contract
test shows the values it compared.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

import clonestore
from clonestore.spi import TableSpec, capabilities_of
from clonestore.testing import StoreFactory
from clonestore.testing.wiping import ALLOW_WIPE_OPTION, TableClaims, WipeRefused

# Before anything imports them (neither import above does): a failing kit test then shows
# the values it compared.
pytest.register_assert_rewrite("clonestore.testing.contract", "clonestore.testing.properties")

if TYPE_CHECKING:
    from clonestore.testing.differential import Stores

__all__ = [
    "DEFAULT_TEST_URL",
    "SYNC_ONLY",
    "StoreFactory",
    "async_mode",
    "audited_stores",
    "clonestore_async",
    "clonestore_async_store",
    "clonestore_plugins",
    "clonestore_store",
    "clonestore_url",
    "configured_url",
    "differential_stores",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "store",
    "store_factory",
]

#: The backend tests run on when nothing else is configured.
DEFAULT_TEST_URL = "memory://"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--clonestore-url`` and the ``clonestore_url`` ini value."""
    group = parser.getgroup("clonestore", "clonestore storage under test")
    group.addoption(
        "--clonestore-url",
        dest="clonestore_url",
        default=None,
        metavar="URL",
        help="store URL the clonestore fixtures open (default: the clonestore_url ini "
        f"value, else {DEFAULT_TEST_URL})",
    )
    group.addoption(
        ALLOW_WIPE_OPTION,
        dest="clonestore_allow_wipe",
        action="store_true",
        default=False,
        help="let the kit empty tables holding rows it did not create (a throwaway "
        "database); without it the run stops before deleting anything",
    )
    parser.addini(
        "clonestore_url",
        help=f"store URL the clonestore fixtures open (default {DEFAULT_TEST_URL})",
        default=None,
    )
    group.addoption(
        "--clonestore-async",
        dest="clonestore_async",
        action="store_true",
        default=False,
        help="run the kit through clonestore.open_async: store_factory's stores call an "
        "AsyncStore on an event loop for every operation",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Register the kit's hypothesis profiles (before hypothesis's own plugin loads
    ``--hypothesis-profile``), with the example database in pytest's cache."""
    if importlib.util.find_spec("hypothesis") is None:
        return
    from hypothesis.database import DirectoryBasedExampleDatabase

    from clonestore.testing.profiles import register_profiles

    database = None
    if config.pluginmanager.has_plugin("cacheprovider"):
        # config.cache does not exist yet: cacheprovider configures after this hook.
        cache_dir = Path(os.path.expandvars(config.getini("cache_dir"))).expanduser()
        database = DirectoryBasedExampleDatabase(
            config.rootpath / cache_dir / "d" / "clonestore-hypothesis"
        )
    register_profiles(database)


def configured_url(config: pytest.Config) -> str:
    """The URL under test: ``--clonestore-url``, the ini value, or ``memory://``."""
    url = config.getoption("clonestore_url", default=None)
    if not url:
        url = config.getini("clonestore_url")
    return str(url) if url else DEFAULT_TEST_URL


@pytest.fixture
def clonestore_url(request: pytest.FixtureRequest) -> str:
    """The URL under test: ``--clonestore-url``, the ini value, or ``memory://``."""
    return configured_url(request.config)


_CLAIMS = pytest.StashKey[TableClaims]()


def table_claims(config: pytest.Config) -> TableClaims:
    """The session's :class:`~clonestore.testing.wiping.TableClaims` (what the kit may empty)."""
    claims = config.stash.get(_CLAIMS, None)
    if claims is None:
        allow = bool(config.getoption("clonestore_allow_wipe", default=False))
        claims = config.stash[_CLAIMS] = TableClaims(allow_wipe=allow)
    return claims


def empty_or_stop(
    claims: TableClaims, store: clonestore.Store, specs: TableSpec | Sequence[TableSpec]
) -> None:
    """Empty tables for a test; stop the whole run if one holds rows the kit did not make."""
    try:
        claims.empty_tables(store, [specs] if isinstance(specs, TableSpec) else specs)
    except WipeRefused as refused:
        store.close()
        pytest.exit(str(refused), returncode=pytest.ExitCode.USAGE_ERROR)


def async_mode(config: pytest.Config) -> bool:
    """Whether the kit runs through ``open_async`` (``--clonestore-async``)."""
    return bool(config.getoption("clonestore_async", default=False))


#: Contract tests the async mode (``--clonestore-async``) does not run, and why: each one's
#: plugin hook starts a thread that uses the synchronous store it was handed, and waits for
#: it. Under ``open_async`` a hook runs on the event loop, inside the bridge, and must neither
#: block the loop nor hand the store to a thread.
SYNC_ONLY: Final = {
    "test_activation_overtaken_midway_leaves_one_active": "hook races from a thread",
    "test_turn_deleted_twice_at_once_is_subtracted_once": "hook races from a thread",
    "test_turn_added_while_session_is_deleted_leaves_no_orphan": "hook races from a thread",
}


def _runs_async(item: pytest.Item) -> bool:
    """Whether ``item``'s stores go through ``open_async``: its ``clonestore_async``
    parameter, else ``--clonestore-async``."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "clonestore_async" in callspec.params:
        return bool(callspec.params["clonestore_async"])
    return async_mode(item.config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The kit's :data:`SYNC_ONLY` tests are skipped where they would run through
    ``open_async``, each with its reason."""
    for item in items:
        reason = SYNC_ONLY.get(getattr(item, "originalname", item.name))
        module = getattr(item, "module", None)
        if (
            reason is not None
            and module is not None
            and module.__name__.startswith("clonestore.testing.contract.")
            and _runs_async(item)
        ):
            item.add_marker(pytest.mark.skip(reason=f"not under --clonestore-async: {reason}"))


class _Factory:
    """Opens stores on one URL, empties each table once per test, closes them all.

    With ``asynchronous``, each store is a :class:`~clonestore.testing.blocking.BlockingStore`:
    the synchronous API, every call made through an ``AsyncStore``.
    """

    def __init__(
        self, url: str, claims: TableClaims | None = None, *, asynchronous: bool = False
    ) -> None:
        self.url = url
        self._claims = claims if claims is not None else TableClaims()
        self.asynchronous = asynchronous
        self._stores: list[Any] = []
        self._wiped: set[str] = set()

    def __call__(self, **kwargs: Any) -> clonestore.Store:
        if self.asynchronous:
            from clonestore.testing.blocking import open_blocking

            store: Any = open_blocking(self.url, **kwargs)
        else:
            store = clonestore.open(self.url, **kwargs)
        self._stores.append(store)
        try:
            fresh = [spec for spec in store.tables.values() if spec.name not in self._wiped]
            empty_or_stop(self._claims, store, fresh)
            self._wiped.update(spec.name for spec in fresh)
        except BaseException:
            store.close()
            raise
        opened: clonestore.Store = store
        return opened

    def close_all(self) -> None:
        errors: list[BaseException] = []
        for store in reversed(self._stores):
            try:
                store.close()
            except Exception as exc:  # close them all, then report
                errors.append(exc)
        self._stores.clear()
        if errors:
            raise errors[0]


@pytest.fixture
def clonestore_async(request: pytest.FixtureRequest) -> bool:
    """Whether ``store_factory``'s stores make every call through
    :func:`clonestore.open_async`: ``--clonestore-async``, unless a suite parametrises
    this fixture (``indirect``) to run each test both ways."""
    return bool(getattr(request, "param", async_mode(request.config)))


@pytest.fixture
def store_factory(
    clonestore_url: str, clonestore_async: bool, request: pytest.FixtureRequest
) -> Iterator[StoreFactory]:
    """``store_factory(**kwargs)``: a store on ``clonestore_url`` (kwargs go to
    :func:`clonestore.open`). Tables start empty; every store is closed at teardown.
    With ``clonestore_async`` (``--clonestore-async``) every call goes through
    :func:`clonestore.open_async`."""
    factory = _Factory(clonestore_url, table_claims(request.config), asynchronous=clonestore_async)
    try:
        yield factory
    finally:
        factory.close_all()


@pytest.fixture
def store(store_factory: StoreFactory) -> clonestore.Store:
    """A clean store on ``clonestore_url``, without plugins."""
    return store_factory()


@pytest.fixture
def clonestore_plugins() -> Sequence[str | object]:
    """Plugins ``clonestore_store`` enables; override to test with cache, audit..."""
    return ()


@pytest.fixture
def clonestore_store(
    store_factory: StoreFactory, clonestore_plugins: Sequence[str | object]
) -> clonestore.Store:
    """A fresh store for application tests: ``memory://`` unless configured otherwise."""
    return store_factory(plugins=list(clonestore_plugins))


@pytest.fixture
async def clonestore_async_store(
    request: pytest.FixtureRequest, clonestore_url: str, clonestore_plugins: Sequence[str | object]
) -> AsyncIterator[clonestore.AsyncStore]:
    """A fresh :class:`~clonestore.AsyncStore` (``open_async``) for async application
    tests, on ``clonestore_url`` with ``clonestore_plugins``; its tables start empty
    (as ``store_factory``'s). Needs an async test runner: anyio's pytest plugin
    (``@pytest.mark.anyio``) or pytest-asyncio."""
    claims = table_claims(request.config)
    store = await clonestore.open_async(clonestore_url, plugins=list(clonestore_plugins))
    try:

        def wipe(sync: clonestore.Store) -> None:
            empty_or_stop(claims, sync, list(sync.tables.values()))

        await store.run_sync(wipe)
        yield store
    finally:
        await store.close()


@pytest.fixture(scope="module")
def differential_stores(request: pytest.FixtureRequest) -> Iterator[Stores]:
    """The differential properties' stores: ``memory://`` (the oracle) and the URL
    under test (``--clonestore-url``), sharing one clock; closed after the module."""
    from clonestore.testing.differential import Stores

    claims = table_claims(request.config)
    asynchronous = ("target",) if async_mode(request.config) else ()
    stores = Stores(
        {"memory": "memory://", "target": configured_url(request.config)},
        empty=lambda store, spec: empty_or_stop(claims, store, spec),
        asynchronous=asynchronous,
    )
    try:
        yield stores
    finally:
        stores.close()


def audit_plugin(store: clonestore.Store) -> object:
    """The audit plugin (entry point ``audit``) for the backend of ``store``: guarded
    (``append_only``) where the backend declares that capability, else unguarded."""
    if "append_only" in capabilities_of(store.backend):
        return "audit"
    import importlib.metadata

    (entry,) = importlib.metadata.entry_points(group="clonestore", name="audit")
    return type(entry.load())(guard=False)


@pytest.fixture(scope="module")
def audited_stores(request: pytest.FixtureRequest) -> Iterator[Stores]:
    """``differential_stores`` opened with the audit plugin (guarded where the URL under
    test declares ``append_only``); closed after the module."""
    from clonestore.testing.differential import Stores

    claims = table_claims(request.config)
    url = configured_url(request.config)
    with clonestore.open(url, create_tables=False, check_tables=False) as probe:
        plugin = audit_plugin(probe)
    asynchronous = ("target",) if async_mode(request.config) else ()
    stores = Stores(
        {"memory": "memory://", "target": url},
        empty=lambda store, spec: empty_or_stop(claims, store, spec),
        asynchronous=asynchronous,
        plugins=[plugin],
    )
    try:
        yield stores
    finally:
        stores.close()
