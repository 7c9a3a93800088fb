"""The clonestore conformance suite: plain pytest tests over the ``store`` and
``store_factory`` fixtures of :mod:`clonestore.testing.plugin`.

Each module holds the tests of one area. None is named ``test_*.py``: the
kit's pytest plugin collects them as modules of their own
(:class:`clonestore.testing.plugin.KitModule`), so each test id names its module,
``contract/users.py::test_...`` under ``pytest --pyargs clonestore.testing
--clonestore-url=URL``, and ``tests/contract/users.py::test_...[postgres]`` in
clonestore's own suite, whose ``tests/contract`` is a symlink to this package
(the backend matrix).
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
    "uniques",
    "upserts",
    "plugins",
    "server",
    "capabilities",
)
