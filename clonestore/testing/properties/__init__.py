"""Differential properties: random operations and queries agree with ``memory://``.

Every backend must give the results, error classes and table contents that
the memory backend (the oracle) gives. Two properties, run by the kit against
``{"memory": "memory://", "target": --clonestore-url}`` (the
``differential_stores`` fixture) and by clonestore's own tests on memory,
SQLite and PostgreSQL at once (``tests/properties/`` overrides the fixture):

* ``operations.BackendsAgree``, a hypothesis state machine: random
  sequences of repository operations (users, models, sessions and turns,
  documents, memories, transactions committed or rolled back, the clock, paged
  queries), valid and invalid input alike; after each step every table is
  compared.
* ``queries.test_queries_agree``: random documents, filters, orders, limits
  and keyset pages.

Each property runs as many examples as the loaded hypothesis profile says
(:mod:`clonestore.testing.profiles`: ``dev`` 50, ``ci`` 300); the state
machine takes up to ``operations.STEPS`` steps per example. Needs
``hypothesis``. As in :mod:`clonestore.testing.contract`, no module here is
named ``test_*.py``: the kit's plugin collects them
(``properties/operations.py::...``), and ``tests/properties/`` imports them.
"""

from __future__ import annotations

#: Every module of the properties, in the order a test runner imports them.
MODULES = ("operations", "queries")
