"""The clonestore conformance suite: plain pytest tests over the ``store`` and
``store_factory`` fixtures of :mod:`clonestore.testing.plugin`.

Each module holds the tests of one area; none is named ``test_*.py``, so they
run only where they are imported: ``clonestore/testing/test_kit.py`` (what
``pytest --pyargs clonestore.testing --clonestore-url=URL`` runs) and
clonestore's own ``tests/test_contract.py`` (the backend matrix).
"""

from __future__ import annotations

#: Every module of the suite, in the order a test runner imports them.
MODULES = (
    "users",
    "entities",
    "queries",
    "paging",
    "validation",
    "inputs",
    "sessions",
    "documents",
    "models",
    "memories",
    "transactions",
    "context",
    "erasure",
    "errors",
    "spi",
    "capabilities",
)
