"""The clonestore conformance suite: plain pytest tests over the ``store`` and
``store_factory`` fixtures of :mod:`clonestore.testing.plugin`.

Each module holds the tests of one area, named ``test_*.py`` so that pytest
collects it like any test module: ``contract/test_users.py::test_...`` under
``pytest --pyargs clonestore.testing --clonestore-url=URL``, and
``clonestore/testing/contract/test_users.py::test_...[postgres]`` in
clonestore's own suite (its ``testpaths``; the backend matrix and the
``-async`` runs come from its ``tests/matrix.py``).
"""

from __future__ import annotations

#: Every module of the suite, in the order a test runner imports them.
MODULES = (
    "test_users",
    "test_entities",
    "test_queries",
    "test_json_lookups",
    "test_paging",
    "test_validation",
    "test_inputs",
    "test_sessions",
    "test_documents",
    "test_models",
    "test_memories",
    "test_search",
    "test_transactions",
    "test_context",
    "test_erasure",
    "test_references",
    "test_errors",
    "test_spi",
    "test_uniques",
    "test_upserts",
    "test_keys",
    "test_plugins",
    "test_server",
    "test_capabilities",
    "test_transfer",
)
