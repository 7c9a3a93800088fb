"""Loading plugins from entry points: a broken installed plugin is reported, not leaked."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import clonestore
from clonestore import ConfigurationError
from clonestore._entry_points import entry_point_plugins


@pytest.fixture
def broken_plugin_installed(tmp_path: Path) -> Iterator[None]:
    """A package on sys.path whose ``clonestore`` entry point names a missing object."""
    (tmp_path / "broken_clonestore_plugin.py").write_text('"""Offers no plugin object."""\n')
    dist_info = tmp_path / "broken_clonestore_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-clonestore-plugin\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[clonestore]\nbroken = broken_clonestore_plugin:plugin\n"
    )
    sys.path.insert(0, str(tmp_path))
    entry_point_plugins.cache_clear()
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("broken_clonestore_plugin", None)
        entry_point_plugins.cache_clear()


@pytest.mark.usefixtures("broken_plugin_installed")
def test_a_plugin_that_cannot_be_loaded_is_a_configuration_error() -> None:
    """Asking for a broken plugin by name raises ConfigurationError naming it and its
    package, with the import failure kept as ``orig``."""
    with pytest.raises(ConfigurationError, match=r"'broken'.*broken-clonestore-plugin") as caught:
        clonestore.open("memory://", plugins=["broken"])
    assert isinstance(caught.value.orig, AttributeError)


@pytest.mark.usefixtures("broken_plugin_installed")
def test_a_broken_plugin_nobody_asks_for_does_not_stop_other_stores(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A broken, unrequested plugin is logged once and every other store still opens."""
    with caplog.at_level("WARNING", logger="clonestore"), clonestore.open("memory://") as store:
        assert store.users.count() == 0
    assert any("'broken'" in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("broken_plugin_installed")
def test_an_unknown_scheme_names_the_broken_plugins() -> None:
    """When no backend serves a URL, the error names plugins that failed to load
    (one of them might have been the backend)."""
    with pytest.raises(ConfigurationError, match=r"no backend.*'broken'.*cannot be loaded"):
        clonestore.open("nosuchscheme://x")


def _without_prometheus(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a new interpreter in which ``prometheus_client`` cannot be imported
    (as in an environment without the ``metrics`` extra)."""
    hide = "import sys; sys.modules['prometheus_client'] = None\n"
    return subprocess.run([sys.executable, "-c", hide + code], capture_output=True, text=True,
                          timeout=120, check=False)


def test_a_plugin_whose_extra_is_absent_says_nothing_until_asked_for() -> None:
    """Without the metrics extra, opening a store and running a CLI command print no
    warning about the metrics plugin (it is not broken, only not installed)."""
    done = _without_prometheus(
        "import clonestore, clonestore.cli\n"
        "with clonestore.open('memory://', plugins=['cache', 'audit']) as store:\n"
        "    print(store.users.count())\n"
        "clonestore.cli.main(['status', '--url', 'memory://'])\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0\n"), done.stdout
    assert "metrics" not in done.stderr, done.stderr
    assert "prometheus" not in done.stdout + done.stderr


def test_a_plugin_whose_extra_is_absent_names_the_pip_install_when_asked_for() -> None:
    """plugins=["metrics"] without its extra is a ConfigurationError giving the exact
    ``pip install 'clonestore[metrics]'``, and the CLI prints that, not "check the URL"."""
    done = _without_prometheus(
        "import clonestore\n"
        "try:\n"
        "    clonestore.open('memory://', plugins=['metrics'])\n"
        "except clonestore.ConfigurationError as error:\n"
        "    print(error)\n"
        "import clonestore.cli\n"
        "clonestore.cli.main(['doctor', '--url', 'memory://', '--plugins', 'metrics'])\n"
    )
    first, *_ = done.stdout.splitlines()
    assert "pip install 'clonestore[metrics]'" in first, done.stdout
    assert "needs the 'metrics' extra of clonestore" in first, first
    cli_error = done.stderr.strip().splitlines()[-1]
    assert cli_error.startswith("clonestore doctor: error:"), done.stderr
    assert cli_error.endswith("pip install 'clonestore[metrics]'"), cli_error
    assert "check the URL" not in done.stderr
