"""The repository's own test runs: loads the backend matrix and its servers
(``tests/matrix.py``) when a run collects ``tests/`` or the kit's modules
(``clonestore/testing``, whose contract package is in ``testpaths``).

It does nothing for other runs: an example's tests run from here, or a third party's
run of the kit (``pytest --pyargs clonestore.testing`` from a project of its own), which
passes through this file when clonestore is an editable install of this checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
#: What the matrix covers.
SUITE = (ROOT / "tests", ROOT / "clonestore" / "testing")


def _runs_the_suite(config: pytest.Config) -> bool:
    """Whether this run is rooted here and collects (part of) :data:`SUITE`."""
    if config.rootpath != ROOT:
        return False
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::")[0]).resolve()
        if any(path == room or room in path.parents or path in room.parents for room in SUITE):
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    """Register the matrix (after the kit's plugin, whose ``clonestore_url`` it overrides)."""
    if _runs_the_suite(config):
        config.pluginmanager.import_plugin("tests.matrix")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """(Here, not in tests/matrix.py, because it runs before ``pytest_configure``.)

    The whole suite (``python -m pytest`` without arguments: README command 2) runs on
    one pytest-xdist worker per CPU; a run naming tests, or giving ``-n``, runs as told.
    Under xdist, unless ``--dist`` says otherwise, tests are handed out by ``worksteal``:
    a worker that runs out takes half of another's queue, so a few long tests (kit runs
    in a subprocess, example virtualenvs) do not leave one worker busy while the other
    waits. (``loadgroup`` cannot share module fixtures here: pytest-xdist 3.8 marks a
    group by rewriting ``item._nodeid``, which pytest 9.2's nodeid no longer reads.)

    Not ``addopts``: pytest in this checkout without the dev extra (the kit run of the
    jsonfile example's README) has no ``-n``. Each worker is a session of its own: its
    own PostgreSQL and MariaDB databases, Redis prefix, Redis Cluster, replicated pair and
    pgserver, on free ports and random names."""
    if (
        config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and config.pluginmanager.has_plugin("xdist")
        and getattr(config.option, "numprocesses", None) is None
        and not hasattr(config, "workerinput")
    ):
        config.option.numprocesses = "auto"
    if (
        _runs_the_suite(config)
        and config.pluginmanager.has_plugin("xdist")
        and getattr(config.option, "numprocesses", None)
        and getattr(config.option, "dist", "no") == "no"
    ):
        config.option.dist = "worksteal"
