"""The house rules of DESIGN section 2, checked on the source: the core never imports
plugins, and built-in plugins use only clonestore's public modules, like a third party's."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import clonestore

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "clonestore"
PLUGINS = ROOT / "plugins"

#: The clonestore modules a plugin may import: the public API and the SPI/hookspec modules.
PUBLIC_MODULES = {"clonestore", "clonestore.spi", "clonestore.hookspecs", "clonestore.secrets",
                  "clonestore.bridge"}
PUBLIC_PACKAGES = ("clonestore.testing",)


def _imports(path: Path) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, absolute module, imported names) for each import in a file; relative imports
    are reported as ``.``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            module = "." if node.level else (node.module or "")
            yield node.lineno, module, tuple(alias.name for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value, ()


def _plugin_packages() -> list[Path]:
    return sorted(p for p in PLUGINS.iterdir() if p.is_dir() and p.name.startswith("clonestore_"))


def test_core_never_imports_plugins():
    """No module under clonestore/ imports a clonestore_* plugin package."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted(CORE.rglob("*.py"))
        for line, module, _ in _imports(path)
        if module.split(".")[0].startswith("clonestore_")
    ]
    assert offenders == []


@pytest.mark.parametrize("package", _plugin_packages(), ids=lambda p: p.name)
def test_plugins_import_only_public_clonestore_modules(package):
    """A built-in plugin imports clonestore's public modules and names only, and never
    another plugin."""
    public_names = set(clonestore.__all__) | {"spi", "hookspecs", "secrets", "testing"}
    offenders = []
    for path in sorted(package.rglob("*.py")):
        for line, module, names in _imports(path):
            top = module.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line}"
            if top.startswith("clonestore_") and top != package.name:
                offenders.append(f"{where} imports another plugin: {module}")
            elif top == "clonestore":
                if module not in PUBLIC_MODULES and not module.startswith(PUBLIC_PACKAGES):
                    offenders.append(f"{where} imports private module {module}")
                elif module == "clonestore":
                    private = sorted(set(names) - public_names)
                    if private:
                        offenders.append(f"{where} imports non-public {', '.join(private)}")
    assert offenders == []


def test_every_built_in_plugin_registers_by_entry_point():
    """Each package under plugins/ is an entry point in group clonestore, found as a third
    party's would be."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    entry_points = pyproject["project"]["entry-points"]["clonestore"]
    registered = {value.split(":")[0].split(".")[0] for value in entry_points.values()}
    assert {p.name for p in _plugin_packages() if (p / "__init__.py").exists()} <= registered


def test_kit_plugin_is_registered_with_pytest():
    """The testing plugin is a pytest11 entry point, so pytest loads it wherever installed."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["entry-points"]["pytest11"] == {
        "clonestore": "clonestore.testing.plugin"
    }
