"""Loading plugins from entry points: a broken installed plugin is reported, not leaked."""

from __future__ import annotations

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
