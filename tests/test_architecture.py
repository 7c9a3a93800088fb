"""The house rules of DESIGN section 2, checked on the source: the core never imports
plugins, and built-in plugins use only clonestore's public modules, like a third party's."""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

import clonestore

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "clonestore"
PLUGINS = ROOT / "plugins"

#: The clonestore modules a plugin may import: the public API, the SPI/hookspec modules and
#: the modules defining what a backend is handed (query nodes, tables, text queries,
#: vector metrics).
PUBLIC_MODULES = {
    "clonestore",
    "clonestore.spi",
    "clonestore.spi_reference",
    "clonestore.query",
    "clonestore.schema",
    "clonestore.text",
    "clonestore.vectors",
    "clonestore.hookspecs",
    "clonestore.plugin_helpers",
    "clonestore.secrets",
    "clonestore.bridge",
    "clonestore.services",
    "clonestore.maintenance",
}
PUBLIC_PACKAGES = ("clonestore.testing",)
#: The modules and packages of clonestore/ that are API (for applications, plugins or
#: backend authors: ``__all__``, DESIGN section 2, the README and docs); every other one
#: is named with a leading underscore.
PUBLIC_CORE = {
    "async_types",
    "bridge",
    "cli",
    "errors",
    "fields",
    "hookspecs",
    "integrations",
    "maintenance",
    "plugin_helpers",
    "query",
    "records",
    "repositories",
    "schema",
    "secrets",
    "services",
    "spi",
    "spi_reference",
    "studio",
    "text",
    "testing",
    "vectors",
}


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


#: The feature plugins: they ask the backend for capabilities and never name an engine.
FEATURE_PLUGINS = ("clonestore_cache", "clonestore_ratelimit", "clonestore_audit")
_ENGINE_WORDS = re.compile(
    r"postgres|sqlite|psycopg|peewee|playhouse|libpq|redis|mysql|mariadb|mongo|memory://"
    r"|\bpg_|\bunlogged\b|\bwal\b",
    re.IGNORECASE,
)
#: Modules through which code opens connections or speaks a wire protocol.
_CONNECTING_MODULES = {
    "socket",
    "ssl",
    "select",
    "selectors",
    "sqlite3",
    "psycopg",
    "psycopg2",
    "peewee",
    "playhouse",
    "redis",
    "asyncpg",
    "pymysql",
    "MySQLdb",
    "http",
    "urllib",
    "asyncio",
}


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
    public_names = set(clonestore.__all__) | {
        "spi", "spi_reference", "hookspecs", "plugin_helpers", "secrets", "services", "testing"
    }
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


def test_core_internals_are_underscored():
    """Every module and package directly under clonestore/ is API (PUBLIC_CORE) or has a
    leading underscore, so a reader tells the two apart by the name."""
    names = {
        path.stem if path.is_file() else path.name
        for path in CORE.iterdir()
        if path.suffix == ".py" or (path / "__init__.py").exists()
    }
    assert {name for name in names if not name.startswith("_")} == PUBLIC_CORE


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


def _module_name(path: Path, base: Path = ROOT) -> str:
    parts = path.relative_to(base).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _source_files() -> dict[str, Path]:
    """Module name -> file, for the core (``clonestore.*``) and every built-in plugin
    (``clonestore_*.*``, importable from ``plugins/``)."""
    paths = {_module_name(path): path for path in CORE.rglob("*.py")}
    for package in _plugin_packages():
        paths.update({_module_name(path, PLUGINS): path for path in package.rglob("*.py")})
    return paths


def _import_graph(prefix: str = "") -> dict[str, set[str]]:
    """Module -> the modules of this house it imports anywhere in its source (at the top,
    in functions, under ``if TYPE_CHECKING:``), for the modules whose name starts with
    ``prefix``. ``from package import module`` is an import of that module (not of the
    package's ``__init__``); relative imports are resolved."""
    every = _source_files()
    paths = {name: path for name, path in every.items() if name.startswith(prefix)}
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
                    targets.add(submodule if submodule in every else base)
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


def test_import_graph_has_no_circle():
    """No two modules of clonestore/ or plugins/ import each other, directly or through
    others, counting imports in functions and under TYPE_CHECKING."""
    assert _circles(_import_graph()) == []


def test_the_sql_plugin_is_four_rooms():
    """``clonestore_peewee`` holds the shared layer (``sql``) and one room per engine, plus
    the public dialect API and the migrations; ``sql`` imports no engine room and no engine
    room imports another."""
    package = ROOT / "plugins" / "clonestore_peewee"
    rooms = {"sql", "sqlite", "postgres", "mariadb"}
    entries = {p.name for p in package.iterdir() if p.name != "__pycache__"}
    assert entries == rooms | {"migrations", "__init__.py", "dialects.py", "py.typed"}
    graph = _import_graph()
    for module, imports in graph.items():
        parts = module.split(".")
        if parts[0] != "clonestore_peewee" or len(parts) < 3 or parts[1] not in rooms:
            continue
        for target in imports:
            room = target.split(".")[1] if target.startswith("clonestore_peewee.") else None
            if room in rooms and room != parts[1]:
                assert room == "sql", f"{module} imports {target}: engine rooms import only sql/"


def test_the_circle_finder_finds_circles():
    """The import walk sees a circle through a TYPE_CHECKING import (a check of the check)."""
    graph = _import_graph()
    assert "clonestore._store" in graph["clonestore"]
    assert "clonestore_peewee.sql._backend" in graph["clonestore_peewee.sqlite._backend"]
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
def _code_words(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of every name, attribute and string literal of the code, docstrings
    left out (they may mention engines as examples; code may not)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Name):
            yield line, node.id
        elif isinstance(node, ast.Attribute):
            yield line, node.attr
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:
                yield line, node.value
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef | ast.alias):
            yield line, node.name


@pytest.mark.parametrize("package", FEATURE_PLUGINS)
def test_feature_plugins_name_no_engine_and_open_no_connection(package):
    """Cache, rate limit and audit code names no engine, reads no backend name, opens nothing."""
    offenders = []
    for path in sorted((PLUGINS / package).rglob("*.py")):
        where = path.relative_to(ROOT)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, word in _code_words(tree):
            if _ENGINE_WORDS.search(word):
                offenders.append(f"{where}:{line} names an engine: {word!r}")
        for line, module, _ in _imports(path):
            if module.split(".")[0] in _CONNECTING_MODULES:
                offenders.append(f"{where}:{line} imports {module}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "connect":
                offenders.append(f"{where}:{node.lineno} calls connect()")
            if isinstance(node, ast.Attribute) and node.attr == "name":
                owner = ast.unparse(node.value)
                if "backend" in owner:
                    offenders.append(f"{where}:{node.lineno} reads {owner}.name")
    assert offenders == []


def test_feature_plugin_check_catches_engine_code():
    """The check above is not vacuous: the engine code it replaced would fail it."""
    old = 'if store.backend.name == "postgresql":\n    cur.execute("ALTER TABLE t SET UNLOGGED")'
    words = [word for _, word in _code_words(ast.parse(old))]
    assert sum(bool(_ENGINE_WORDS.search(word)) for word in words) == 2
    assert {"psycopg2", "select"} <= _CONNECTING_MODULES
