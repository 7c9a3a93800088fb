"""``clonestore.spi`` is one page (issue 22 item 2): the protocols, rows, tables, table
options and capabilities; the reference meanings live in ``clonestore.spi_reference`` and
the plugin helpers in ``clonestore.plugin_helpers``. The names moved out still resolve,
warned, until API 3; nothing in this repository uses them."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from clonestore import spi, spi_reference

ROOT = Path(__file__).resolve().parents[1]

#: The page: what a backend author implements and is handed, besides the protocol of each
#: capability that adds methods (CAPABILITY_PROTOCOLS, which grows with the capabilities).
PAGE = {
    # protocols
    "Backend", "BackendFactory", "Migrator",
    # rows and changes
    "Row", "Increment", "Aggregate", "KINDS", "PRIMARY_KEY", "AGGREGATES",
    # tables and table options
    "TableSpec", "Column", "Index", "Unique", "ForeignKey", "AppendOnly", "TABLE_OPTIONS",
    # capabilities and version
    "CAPABILITIES", "CAPABILITY_PROTOCOLS", "DECLARED_CAPABILITIES", "capabilities_of",
    "withhold", "UpsertReturning", "API_VERSION", "check_api_version",
}  # fmt: skip


def test_spi_exports_the_page_only():
    """spi's __all__ is the page, and the functions it defines are the version check and
    the capability set's two."""
    protocols = {protocol.__name__ for protocol in spi.CAPABILITY_PROTOCOLS.values()}
    assert set(spi.__all__) == PAGE | protocols
    defined = {
        name
        for name, value in vars(spi).items()
        if inspect.isfunction(value) and value.__module__ == spi.__name__
    }
    assert defined - {"__getattr__"} == {"check_api_version", "capabilities_of", "withhold"}


def test_every_capability_with_methods_has_its_protocol_on_the_page():
    """Each protocol of CAPABILITY_PROTOCOLS is exported, under its own name."""
    for protocol in spi.CAPABILITY_PROTOCOLS.values():
        assert protocol.__name__ in spi.__all__


@pytest.mark.parametrize("name", sorted(spi._MOVED))
def test_a_moved_name_resolves_with_a_warning_naming_its_home(name):
    """``clonestore.spi.<moved>`` is its home's object, with a DeprecationWarning."""
    home = spi._MOVED[name]
    with pytest.warns(DeprecationWarning, match=rf"moved to {home}\.{name}\b.*API 3"):
        value = getattr(spi, name)
    assert value is getattr(importlib.import_module(home), name)
    assert name in importlib.import_module(home).__all__


def test_an_unknown_name_is_still_an_attribute_error():
    """The deprecation path answers only the moved names."""
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        spi.nosuch  # noqa: B018
    with pytest.raises(ImportError):
        exec("from clonestore.spi import nosuch", {})


def test_reference_meanings_are_one_module():
    """The reference meanings a backend may run are all in spi_reference."""
    for name in ("matches", "sort_rows", "apply_changes", "aggregate", "nearest_reference",
                 "settle", "tokenize", "bm25", "search_reference", "iter_leaves"):
        assert name in spi_reference.__all__


def _python_files() -> list[Path]:
    roots = ("clonestore", "plugins", "examples", "tests", "tools", "bench")
    paths = (p for root in roots for p in (ROOT / root).rglob("*.py"))
    return sorted(p for p in paths if ".venv" not in p.parts)


def test_nothing_here_uses_a_moved_name():
    """No module of this repository imports a moved name from clonestore.spi, or reads one
    as ``clonestore.spi.<name>``: the deprecation path is for others' code."""
    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            used: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module == "clonestore.spi":
                used = [alias.name for alias in node.names]
            elif isinstance(node, ast.Attribute) and ast.unparse(node.value) == "clonestore.spi":
                used = [node.attr]
            for name in used:
                if name in spi._MOVED:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert offenders == []
