"""Reliability tests: the shared-storage matrix, PostgreSQL fault helpers, the restart opt-in.

``shared_url`` (the backends several processes share, defined with the
main matrix in ``tests/conftest.py``) is what modules needing shared storage
override ``clonestore_url`` with, so the kit's fixtures follow.

Tests marked ``restarts_server`` stop and start the shared PostgreSQL server;
they run only when ``CLONESTORE_TEST_ALLOW_RESTART=1`` (``.ci/run`` sets it).
Without it they are deselected, and the terminal summary says so.
"""

from __future__ import annotations

import os

import pytest

ALLOW_RESTART_ENV = "CLONESTORE_TEST_ALLOW_RESTART"



def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"restarts_server: restarts the shared PostgreSQL server (needs {ALLOW_RESTART_ENV}=1)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(ALLOW_RESTART_ENV) == "1":
        return
    restarting = [i for i in items if i.get_closest_marker("restarts_server")]
    if restarting:
        items[:] = [i for i in items if not i.get_closest_marker("restarts_server")]
        config.hook.pytest_deselected(items=restarting)
        config.stash[_DESELECTED] = len(restarting)


_DESELECTED = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    count = terminalreporter.config.stash.get(_DESELECTED, 0)
    if count:
        terminalreporter.write_line(
            f"clonestore: {count} server-restart test(s) deselected; "
            f"set {ALLOW_RESTART_ENV}=1 to run them (restarts the PostgreSQL server)"
        )
