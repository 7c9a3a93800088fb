"""The clonestore pytest plugin (entry point ``pytest11``: ``clonestore``).

Adds ``--clonestore-url`` (ini: ``clonestore_url``) and the fixtures described
in :mod:`clonestore.testing`: ``clonestore_url``, ``store_factory``,
``store``, ``clonestore_plugins`` and ``clonestore_store``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

import clonestore
from clonestore.spi import TRUE
from clonestore.testing import StoreFactory

__all__ = [
    "DEFAULT_TEST_URL",
    "StoreFactory",
    "clonestore_plugins",
    "clonestore_store",
    "clonestore_url",
    "pytest_addoption",
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
    parser.addini(
        "clonestore_url",
        help=f"store URL the clonestore fixtures open (default {DEFAULT_TEST_URL})",
        default=None,
    )


@pytest.fixture
def clonestore_url(request: pytest.FixtureRequest) -> str:
    """The URL under test: ``--clonestore-url``, the ini value, or ``memory://``."""
    url = request.config.getoption("clonestore_url", default=None)
    if not url:
        url = request.config.getini("clonestore_url")
    return str(url) if url else DEFAULT_TEST_URL


class _Factory:
    """Opens stores on one URL, empties each table once per test, closes them all."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._stores: list[clonestore.Store] = []
        self._wiped: set[str] = set()

    def __call__(self, **kwargs: Any) -> clonestore.Store:
        store = clonestore.open(self.url, **kwargs)
        self._stores.append(store)
        try:
            for spec in store.tables.values():
                if spec.name not in self._wiped:
                    store.backend.delete(spec, TRUE)
                    self._wiped.add(spec.name)
        except BaseException:
            store.close()
            raise
        return store

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
def store_factory(clonestore_url: str) -> Iterator[StoreFactory]:
    """``store_factory(**kwargs)``: a store on ``clonestore_url`` (kwargs go to
    :func:`clonestore.open`). Tables start empty; every store is closed at teardown."""
    factory = _Factory(clonestore_url)
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
