"""The clonestore pytest plugin (entry point ``pytest11``: ``clonestore``).

Adds ``--clonestore-url`` (ini: ``clonestore_url``) and the fixtures described
in :mod:`clonestore.testing`: ``clonestore_url``, ``store_factory``,
``store``, ``clonestore_plugins``, ``clonestore_store``,
``clonestore_async_store`` and ``differential_stores``. ``--clonestore-async``
runs every store of the kit through :func:`clonestore.open_async`. When
hypothesis is installed it also registers the ``dev`` and ``ci`` profiles of
:mod:`clonestore.testing.profiles`.

It collects the kit's modules as test modules of their own (:class:`KitModule`),
so each test's id names its module: ``contract/users.py::test_...`` under
``--pyargs clonestore.testing``, and ``tests/contract/users.py::test_...`` in a
suite whose ``tests/contract`` is a symlink to the kit's contract package (as
clonestore's own is). Their assertions are rewritten by pytest, so a failing
contract test shows the values it compared.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import pytest

import clonestore
from clonestore.testing import StoreFactory
from clonestore.testing.wiping import ALLOW_WIPE_OPTION, TableClaims, WipeRefused

# Before anything imports them (neither import above does): a failing kit test then shows
# the values it compared.
pytest.register_assert_rewrite("clonestore.testing.contract", "clonestore.testing.properties")

if TYPE_CHECKING:
    from clonestore.testing.differential import Stores

__all__ = [
    "DEFAULT_TEST_URL",
    "KIT_PACKAGES",
    "KitModule",
    "StoreFactory",
    "async_mode",
    "clonestore_async_store",
    "clonestore_plugins",
    "clonestore_store",
    "clonestore_url",
    "configured_url",
    "differential_stores",
    "kit_module_name",
    "pytest_addoption",
    "pytest_collect_file",
    "pytest_configure",
    "pytest_pycollect_makemodule",
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


#: The kit's packages of test modules (none of their modules is named ``test_*.py``).
KIT_PACKAGES = ("contract", "properties")
_KIT_DIR = Path(__file__).resolve().parent


def kit_module_name(path: Path) -> str | None:
    """The dotted name of the kit test module at ``path`` (the real file or a path through
    a symlinked directory), or None when ``path`` is no kit test module."""
    if path.suffix != ".py" or path.name.startswith("_"):
        return None
    real = path.resolve()
    if real.parent.parent != _KIT_DIR or real.parent.name not in KIT_PACKAGES:
        return None
    return f"clonestore.testing.{real.parent.name}.{real.stem}"


class KitModule(pytest.Module):
    """A module of the kit collected under its own file name, imported by its package name
    (never a second copy under a path-derived name), with its assertions rewritten."""

    def _getobj(self) -> ModuleType:
        name = kit_module_name(self.path)
        assert name is not None
        return importlib.import_module(name)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect the kit's test modules, which pytest's ``test_*.py`` pattern leaves out."""
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest_pycollect_makemodule below
    if kit_module_name(file_path) is None:
        return None
    module: pytest.Module = KitModule.from_parent(parent, path=file_path)
    return module


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> Any:
    """A kit module named on the command line (``clonestore/testing/contract/users.py``,
    ``--pyargs clonestore.testing.contract.users``) is a :class:`KitModule` too."""
    if kit_module_name(module_path) is None:
        return None
    return KitModule.from_parent(parent, path=module_path)


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


def empty_or_stop(claims: TableClaims, store: clonestore.Store, spec: Any) -> None:
    """Empty a table for a test; stop the whole run if it holds rows the kit did not make."""
    try:
        claims.empty(store, spec)
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--clonestore-async``, the kit's :data:`SYNC_ONLY` tests are skipped, each
    with its reason."""
    if not async_mode(config):
        return
    for item in items:
        reason = SYNC_ONLY.get(getattr(item, "originalname", item.name))
        if reason is not None and kit_module_name(item.path) is not None:
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
            for spec in store.tables.values():
                if spec.name not in self._wiped:
                    empty_or_stop(self._claims, store, spec)
                    self._wiped.add(spec.name)
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
def store_factory(
    clonestore_url: str, request: pytest.FixtureRequest
) -> Iterator[StoreFactory]:
    """``store_factory(**kwargs)``: a store on ``clonestore_url`` (kwargs go to
    :func:`clonestore.open`). Tables start empty; every store is closed at teardown.
    Under ``--clonestore-async`` every call goes through :func:`clonestore.open_async`."""
    factory = _Factory(
        clonestore_url, table_claims(request.config), asynchronous=async_mode(request.config)
    )
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
            for spec in sync.tables.values():
                empty_or_stop(claims, sync, spec)

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
