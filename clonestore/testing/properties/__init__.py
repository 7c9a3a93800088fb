"""Differential properties: random operations and queries agree with ``memory://``.

Every backend must give the results, error classes and table contents that
the memory backend (the oracle) gives. Two properties, run by the kit against
``{"memory": "memory://", "target": --clonestore-url}`` (the
``differential_stores`` fixture) and by clonestore's own tests on memory,
SQLite and PostgreSQL at once (``tests/properties/`` overrides the fixture):

* ``test_operations.BackendsAgree``, a hypothesis state machine: random
  sequences of repository operations (users, models, sessions and turns,
  documents, memories, transactions committed or rolled back, the clock, paged
  queries), valid and invalid input alike; after each step every table is
  compared.
* ``test_queries.test_queries_agree``: random documents, filters, orders, limits
  and keyset pages; ``test_queries.test_json_lookups_agree``: random JSON metadata
  and random lookups into it; ``test_queries.test_text_search_agrees``: random texts
  (case, accents, punctuation) and queries (words, phrases): ``search`` and ``recall``
  give the same records, scores and order.

Each property runs as many examples as the loaded hypothesis profile says
(:mod:`clonestore.testing.profiles`: ``dev`` 50, ``ci`` 300); the state
machine takes up to ``test_operations.STEPS`` steps per example. Needs
``hypothesis``. As in :mod:`clonestore.testing.contract`, the modules are named
``test_*.py`` and pytest collects them (``properties/test_operations.py::...``);
``tests/properties/`` imports them.
"""

from __future__ import annotations

#: Every module of the properties, in the order a test runner imports them.
MODULES = ("test_operations", "test_queries", "test_audit_chains")
