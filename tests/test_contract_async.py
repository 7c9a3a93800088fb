"""Every contract test again, through ``clonestore.open_async``: the kit's own test functions
(taken from its modules, not copied) on the backend matrix, with ``store_factory`` giving
stores whose every call is an ``AsyncStore``'s, awaited on an event loop
(clonestore.testing.blocking); what ``--clonestore-async`` runs for a third party."""

import importlib
from collections.abc import Iterator

import pytest

from clonestore.testing import StoreFactory
from clonestore.testing.contract import MODULES
from clonestore.testing.plugin import SYNC_ONLY, _Factory, table_claims

# The kit's SYNC_ONLY tests (each with its reason) are left out, as --clonestore-async does.
for _name in MODULES:
    _module = importlib.import_module(f"clonestore.testing.contract.{_name}")
    globals().update(
        {k: v for k, v in vars(_module).items() if k.startswith("test_") and k not in SYNC_ONLY}
    )


@pytest.fixture
def store_factory(clonestore_url: str, request: pytest.FixtureRequest) -> Iterator[StoreFactory]:
    """The kit's factory in its async mode (what ``--clonestore-async`` selects)."""
    factory = _Factory(clonestore_url, table_claims(request.config), asynchronous=True)
    try:
        yield factory
    finally:
        factory.close_all()
