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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _core_import_graph() -> dict[str, set[str]]:
    """Module -> the clonestore modules it imports anywhere in its source (at the top,
    in functions, under ``if TYPE_CHECKING:``). ``from package import module`` is an
    import of that module (not of the package's ``__init__``); relative imports are
    resolved."""
    paths = {_module_name(path): path for path in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in paths else base)
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_core_import_graph_has_no_circle():
    """No two modules of clonestore/ import each other, directly or through others,
    counting imports in functions and under TYPE_CHECKING."""
    assert _circles(_core_import_graph()) == []


def test_the_circle_finder_finds_circles():
    """The import walk sees a circle through a TYPE_CHECKING import (a check of the check)."""
    graph = _core_import_graph()
    assert "clonestore.store" in graph["clonestore"]
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
