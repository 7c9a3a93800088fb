"""The public API is ``clonestore.__all__``: exactly the documented names, each importable
and documented."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
from pathlib import Path

import pytest

import clonestore
import clonestore.errors
import clonestore.records

#: The public API (DESIGN section 3): open and Store, records, errors, hookimpl, and what
#: plugins and typed callers need (operations, pages, table specs).
DOCUMENTED = {
    # opening a store
    "open",
    "Store",
    "open_async",
    "AsyncStore",
    "DEFAULT_URL",
    # records of the clone domain
    "User",
    "VoiceModel",
    "FaceModel",
    "Session",
    "Turn",
    "Document",
    "Memory",
    "Specialization",
    # bases for your own records
    "Entity",
    "SoftDeletable",
    # what repositories return
    "Repository",
    "Page",
    "Scored",
    "ScoredMemory",
    "SessionStatistics",
    "SessionWithTurns",
    # errors
    "ClonestoreError",
    "ValidationError",
    "NotFound",
    "AlreadyExists",
    "Conflict",
    "ForeignKeyViolation",
    "InvalidTransition",
    "RateLimited",
    "ConfigurationError",
    "MigrationsPending",
    "StorageUnavailable",
    "BackendError",
    "DumpError",
    # plugins
    "hookimpl",
    "Operation",
    "Context",
    # declaring tables (plugins, records)
    "TableSpec",
    "Column",
    "Unique",
    "Index",
    "ForeignKey",
    "table_spec",
    "column",
    "record",
    # the package
    "__version__",
}


def test_all_is_exactly_the_documented_names():
    """clonestore.__all__ lists the documented public names, each once."""
    assert len(clonestore.__all__) == len(set(clonestore.__all__))
    assert set(clonestore.__all__) == DOCUMENTED


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_public_name_is_importable(name):
    """Each public name can be imported from clonestore."""
    namespace: dict[str, object] = {}
    exec(f"from clonestore import {name}", namespace)
    assert namespace[name] is getattr(clonestore, name)


def _documented_by_comment(name: str) -> bool:
    """Whether a module of the package assigns ``name`` right after a ``#:`` comment."""
    for path in Path(clonestore.__file__).parent.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        if re.search(rf"^#:.*\n(?:#:.*\n)*{re.escape(name)}\b[^\n]*=", source, re.M):
            return True
    return False


@pytest.mark.parametrize("name", sorted(n for n in DOCUMENTED if n != "__version__"))
def test_public_name_has_a_docstring(name):
    """Each public class and function has a docstring; each public value a #: comment."""
    value = getattr(clonestore, name)
    if inspect.isclass(value) or inspect.isfunction(value):
        assert inspect.getdoc(value), f"{name} has no docstring"
    else:
        assert _documented_by_comment(name), f"{name} has no #: comment where it is assigned"


def test_version_matches_the_distribution():
    """clonestore.__version__ is the installed distribution's version."""
    assert clonestore.__version__ == importlib.metadata.version("clonestore")


def test_every_error_and_record_is_public():
    """Every error class and every record class is exported from clonestore."""
    assert set(clonestore.errors.__all__) <= set(clonestore.__all__)
    records = {
        name
        for name in clonestore.records.__all__
        if inspect.isclass(getattr(clonestore.records, name))
    }
    assert records <= set(clonestore.__all__)


#: The modules plugins import besides clonestore itself.
PLUGIN_FACING = (
    "clonestore.spi",
    "clonestore.spi_reference",
    "clonestore.hookspecs",
    "clonestore.plugin_helpers",
    "clonestore.services",
    "clonestore.testing",
)


@pytest.mark.parametrize("module", PLUGIN_FACING)
def test_plugin_facing_modules_are_documented(module):
    """The modules plugins import have a module docstring, and their __all__ names exist."""
    mod = importlib.import_module(module)
    assert inspect.getdoc(mod)
    for name in getattr(mod, "__all__", ()):
        assert hasattr(mod, name), f"{module}.__all__ names missing {name}"


PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def _plugin_public_modules() -> list[str]:
    """Each built-in plugin package and its modules not named with a leading underscore."""
    modules = []
    for package in sorted(p for p in PLUGINS.iterdir() if (p / "__init__.py").exists()):
        modules.append(package.name)
        modules.extend(
            f"{package.name}.{path.stem}"
            for path in sorted(package.glob("*.py"))
            if not path.name.startswith("_")
        )
    return modules


@pytest.mark.parametrize("module", _plugin_public_modules())
def test_plugin_public_modules_declare_documented_all(module):
    """A built-in plugin's package and public modules have a docstring and an __all__
    whose names exist, each class and function with a docstring (helpers live in
    _underscored modules)."""
    mod = importlib.import_module(module)
    assert inspect.getdoc(mod), f"{module} has no docstring"
    names = getattr(mod, "__all__", None)
    assert names is not None, f"{module} has no __all__"
    assert len(names) == len(set(names)), f"{module}.__all__ repeats a name"
    undocumented = []
    for name in names:
        assert hasattr(mod, name), f"{module}.__all__ names missing {name}"
        value = getattr(mod, name)
        if (inspect.isclass(value) or inspect.isfunction(value)) and not value.__doc__:
            undocumented.append(name)
    assert undocumented == [], f"{module}: no docstring on {', '.join(undocumented)}"


#: The dialect API (clonestore_peewee.dialects, versioned by clonestore.spi.API_VERSION): what a
#: new SQL engine fills in to run on the shared SQL layer (docs/backend-guide.md section 9).
DIALECT_API = {
    "Dialect",
    "DialectContext",
    "Codecs",
    "JsonLookup",
    "SQLITE",
    "POSTGRES",
    "MARIADB",
    # the backend base class an engine subclasses, its statement modes and fetch
    "SQLBackend",
    "ONE",
    "ALL",
    "ROWCOUNT",
    "NONE",
    "MANY",
    "fetch",
    # the storage types as the built-in engines spell them, and their Peewee fields
    "SQLITE_TYPES",
    "POSTGRES_TYPES",
    "MARIADB_TYPES",
    "FIELD_CLASSES",
}
#: What a dialect sets or overrides: its attributes and methods, each documented.
DIALECT_MEMBERS = {
    "api_version",
    "name",
    "codecs",
    "field_types",
    "array_params",
    "update_returning",
    "upsert_on_conflict",
    "index_ddl",
    "index_name",
    "duplicate_key",
    "primary_key_name",
    "translate",
    "order_term",
    "text_contains",
    "list_contains",
    "list_overlap",
    "in_array",
    "not_in_array",
    "min_max",
    "starts_with",
    "ends_with",
    "json_lookup",
}


def test_dialect_api_is_exactly_the_documented_names():
    """clonestore_peewee.dialects, the plugin's one public module, exports the dialect API,
    whose version is the backend API's (clonestore.spi.API_VERSION)."""
    dialects = importlib.import_module("clonestore_peewee.dialects")
    assert set(dialects.__all__) == DIALECT_API
    assert dialects.Dialect.api_version == clonestore.spi.API_VERSION


def test_dialect_members_are_documented():
    """Every member a dialect fills in has a docstring (methods) or a #: comment
    (attributes), and the built-in dialects fill in every abstract one."""
    dialects = importlib.import_module("clonestore_peewee.dialects")
    source = inspect.getsource(dialects.Dialect)
    public = {
        name
        for name in [*vars(dialects.Dialect), *dialects.Dialect.__annotations__]
        if not name.startswith("_")
    }
    assert public == DIALECT_MEMBERS
    for name in DIALECT_MEMBERS:
        value = getattr(dialects.Dialect, name, None)
        if inspect.isfunction(value):
            assert inspect.getdoc(value), f"Dialect.{name} has no docstring"
        else:
            assert re.search(rf"#:.*\n(?:\s*#:.*\n)*\s*{name}\b", source), f"Dialect.{name}"
    for dialect in (dialects.SQLITE, dialects.POSTGRES, dialects.MARIADB):
        assert not getattr(type(dialect), "__abstractmethods__", ())


def test_sql_backend_hooks_are_public_named():
    """What an engine's backend class must implement (SQLBackend's abstract methods,
    docs/backend-guide.md section 9) has public names, each documented."""
    from clonestore_peewee.dialects import SQLBackend

    hooks = SQLBackend.__abstractmethods__
    assert hooks == {
        "execute",
        "begin_transaction",
        "end_transaction",
        "schema_session",
        "apply_table_options",
        "purge_up_to",
    }
    assert all(inspect.getdoc(getattr(SQLBackend, name)) for name in hooks)


def test_a_dialect_newer_than_the_api_is_refused():
    """A backend refuses a dialect written for a newer API, saying to upgrade."""
    from clonestore_peewee.dialects import SQLITE
    from clonestore_peewee.sqlite._backend import SqliteBackend

    class Future(type(SQLITE)):  # type: ignore[misc]
        api_version = clonestore.spi.API_VERSION + 1

    class FutureBackend(SqliteBackend):
        dialect = Future()

    newer = r"sqlite dialect is written for clonestore's backend API \d+.*upgrade clonestore"
    with pytest.raises(clonestore.ConfigurationError, match=newer):
        FutureBackend("sqlite:///:memory:")
