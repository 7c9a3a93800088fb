"""Loading plugins from entry points: a broken installed plugin is reported, not leaked."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import clonestore
from clonestore import ConfigurationError
from clonestore.store import _entry_point_plugins


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
    _entry_point_plugins.cache_clear()
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("broken_clonestore_plugin", None)
        _entry_point_plugins.cache_clear()


@pytest.mark.usefixtures("broken_plugin_installed")
def test_a_plugin_that_cannot_be_loaded_is_a_configuration_error() -> None:
    """Opening a store with a broken plugin installed raises ConfigurationError naming it
    and its package, with the import failure kept as ``orig``."""
    with pytest.raises(ConfigurationError, match=r"'broken'.*broken-clonestore-plugin") as caught:
        clonestore.open("memory://")
    assert isinstance(caught.value.orig, AttributeError)
