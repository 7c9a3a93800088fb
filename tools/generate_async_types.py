"""Generates ``clonestore/async_types.py``, the types of the awaited API, from the
synchronous classes (SQLAlchemy's ``tools/generate_proxy_methods.py`` discipline: an
explicit list of the members to proxy, docstrings copied, checked to be current).

    python tools/generate_async_types.py           # rewrite clonestore/async_types.py
    python tools/generate_async_types.py --check   # exit 1 if it is stale

The repository protocols follow the synchronous hierarchy: one generic
``AsyncRepository[R]`` carries the shared methods of :class:`Repository`,
``AsyncOwnedRepository[R]`` adds ``for_owner``, and each entity's protocol adds only
the members of its own class (its domain operations; ``create`` and ``update`` where it
types their keywords). Which members each class gives is :data:`MEMBERS`, written here
by hand; :data:`LEFT_OUT` names the public members deliberately not awaited, with why.
A public member in neither is an error, so a new repository method is added to
:data:`MEMBERS` (or :data:`LEFT_OUT`) and the module regenerated.

A method becomes an ``async def`` with the same parameters, result and docstring (a
``TYPE_CHECKING`` signature counts, as it does for mypy; its docstring is the run-time
method's); a property stays a property. The source is read with :mod:`ast`. The list of
repositories is :data:`clonestore.repositories.REPOSITORIES` and ``CATALOGUES`` (their
annotations classes), written once.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import inspect
import subprocess
import sys
import textwrap
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from clonestore import services  # noqa: E402
from clonestore.repositories import (  # noqa: E402
    CATALOGUES,
    REPOSITORIES,
    CloneModelRepository,
    DocumentRepository,
    FaceModelRepository,
    MemoryRepository,
    OwnedRepository,
    Repository,
    SessionRepository,
    SpecializationRepository,
    TurnRepository,
    UserRepository,
    VoiceModelRepository,
)

ASYNC_TYPES_MODULE = ROOT / "clonestore" / "async_types.py"

#: The members each synchronous class gives its async protocol: its own (defined in its
#: body), not those it inherits. The bases first: a class's protocol extends its base's.
MEMBERS: dict[type, tuple[str, ...]] = {
    Repository: (
        "get", "get_or_none", "find_one", "find_many", "page", "count", "exists", "search",
        "create", "create_many", "upsert", "update", "update_many", "delete", "restore",
        "hard_delete",
    ),
    OwnedRepository: ("for_owner",),
    CloneModelRepository: ("activate", "deactivate", "active_for"),
    UserRepository: ("create", "update", "find_by_email", "export", "erase"),
    VoiceModelRepository: ("create", "update"),
    FaceModelRepository: ("create", "update"),
    SessionRepository: (
        "create", "update", "update_state", "add_turn", "end", "get_with_turns",
        "user_statistics",
    ),
    TurnRepository: ("create", "update"),
    DocumentRepository: (
        "create", "update", "update_status", "set_vector_ids", "search_by_tags", "recall",
    ),
    MemoryRepository: ("create", "update", "add", "similar", "nearest", "recall"),
    SpecializationRepository: ("create", "update", "find_by_name"),
    services.CacheService: (
        "set_embedding", "get_embedding", "get_or_compute_embedding",
        "set_vector_search_results", "get_vector_search_results",
        "get_or_compute_vector_search_results", "set_llm_response", "get_llm_response",
        "get_or_compute_llm_response", "flush_hit_counts", "clean_expired",
        "clean_all_expired_cache", "stats", "invalidate", "export_user", "erase_user",
    ),
    services.RateLimitService: (
        "config", "configure", "tier_of", "policy_for", "check_and_increment", "status",
        "get_status", "cleanup", "usage", "export_user", "erase_user",
    ),
    services.AuditService: (
        "guarded", "log", "find", "find_by_user", "find_by_user_id", "user_statistics",
        "purge", "verify", "head", "anchor", "export_user", "erase_user",
    ),
}  # fmt: skip

#: Public members of the synchronous classes that the async protocols leave out, and why.
LEFT_OUT: dict[str, str] = {
    "scoped": "builds the repositories of a user's view; use store.for_user(user_id)",
    "repos": "the sibling repositories, synchronous: for a repository's own code",
    "where": "extension surface of a synchronous subclass (builds an expression, no I/O)",
    "load": "extension surface of a synchronous subclass (a row to a record, no I/O)",
    "stamp": "extension surface of a synchronous subclass (bookkeeping, no I/O)",
    "noun": "class configuration of the repository, not an operation",
    "owner_column": "class configuration of the repository, not an operation",
    "search_fields": "class configuration of the repository, not an operation",
    "has_references": "class configuration of the repository, not an operation",
    "initial_values": "class configuration of the repository, not an operation",
    "owner": "the owning user of a view: store.for_user(user_id).user_id",
    "context": "the repository's wiring, synchronous",
    "spec": "the repository's table spec (store.tables[name])",
    "record": "the repository's record class",
}

#: The built-in services typed under ``open_async``: store attribute -> protocol.
SERVICES: dict[str, type] = {
    "cache": services.CacheService,
    "ratelimit": services.RateLimitService,
    "audit": services.AuditService,
}

_HEADER = '''"""The types of the awaited API of :func:`clonestore.open_async`.

One protocol per repository (``store.users`` is an :class:`AsyncUserRepository`)
and per built-in service (``store.cache`` is an :class:`AsyncCacheService`): the
members of the synchronous class, each method an ``async def`` with the same
parameters, result and docstring. The repositories' shared methods are those of the
generic :class:`AsyncRepository`; each entity's protocol adds its own. So ``await
store.users.create(email=..., nmae=...)`` and ``await store.usres.count()`` are type
errors under mypy --strict, as they are with :func:`clonestore.open`.

Generated from the synchronous classes by ``tools/generate_async_types.py`` (``python
tools/generate_async_types.py`` rewrites it); ``tests/test_typing.py`` fails when the
two disagree. Do not edit by hand.
"""

from __future__ import annotations

{imports}

__all__ = [
{names}
]
'''


class _Substitute(ast.NodeTransformer):
    """Replaces type variable names by the concrete types a subclass gives them."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.mapping:
            return ast.copy_location(ast.Name(self.mapping[node.id], ast.Load()), node)
        return node


def _class_node(cls: type) -> tuple[ast.ClassDef, list[str]]:
    """The class's AST and its source lines."""
    source = textwrap.dedent(inspect.getsource(cls))
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.ClassDef)
    return node, source.splitlines()


def _class_body(cls: type) -> list[ast.stmt]:
    """The statements of a class body, those of ``if TYPE_CHECKING:`` blocks in place
    of the run-time ones they declare (mypy reads them)."""
    node, _ = _class_node(cls)
    plain: list[ast.stmt] = []
    declared: list[ast.stmt] = []
    for statement in node.body:
        if isinstance(statement, ast.If) and ast.unparse(statement.test) == "TYPE_CHECKING":
            declared.extend(statement.body)
        else:
            plain.append(statement)
    return declared + plain  # the first definition of a name wins


def _own_members(cls: type) -> dict[str, ast.stmt]:
    """The public members ``cls``'s body defines, by name (first definition wins)."""
    found: dict[str, ast.stmt] = {}
    for statement in _class_body(cls):
        name = None
        if isinstance(statement, ast.FunctionDef):
            name = statement.name
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            name = statement.target.id
        elif (
            isinstance(statement, ast.Assign)
            and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name)
        ):
            name = statement.targets[0].id
        if name is not None and not name.startswith("_"):
            found.setdefault(name, statement)
    return found


def docstring(cls: type, name: str) -> str | None:
    """The docstring of method ``name`` as ``cls`` runs it (a ``TYPE_CHECKING`` stub has
    none: the run-time method's, along the MRO)."""
    for klass in cls.__mro__:
        member = vars(klass).get(name)
        if member is None:
            continue
        doc = inspect.getdoc(member.fget if isinstance(member, property) else member)
        if doc:
            return doc
    return None


def _type_arguments(leaf: type) -> dict[type, dict[str, str]]:
    """For each generic class in ``leaf``'s MRO, its type variables' names -> the types
    ``leaf`` gives them (as source text; a type variable of ``leaf``'s own stays one)."""
    found: dict[type, dict[str, str]] = {leaf: {}}
    for cls in leaf.__mro__:
        given = found.get(cls, {})
        for base in getattr(cls, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            if origin is None or origin is typing.Generic:
                continue
            names = [p.__name__ for p in origin.__parameters__]
            values = [
                given.get(a.__name__, a.__name__) if isinstance(a, typing.TypeVar) else _text(a)
                for a in typing.get_args(base)
            ]
            found.setdefault(origin, dict(zip(names, values, strict=True)))
    return found


def _text(value: Any) -> str:
    return value.__name__ if isinstance(value, type) else repr(value)


class _Protocol:
    """One protocol: its members' source lines, and the names their annotations use."""

    def __init__(self, cls: type, names: dict[str, ModuleType]) -> None:
        self.cls = cls
        self.module = sys.modules[cls.__module__]
        self.lines: dict[str, list[str]] = {}
        self.names = names  # name used -> the module it is read from

    def add(self, name: str, statement: ast.stmt, source: list[str]) -> None:
        if isinstance(statement, ast.FunctionDef):
            self._add_function(statement, source)
        elif isinstance(statement, ast.AnnAssign):
            self._uses(statement.annotation)
            self.lines[name] = [f"{name}: {ast.unparse(statement.annotation)}"]
        elif isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant):
            self.lines[name] = [f"{name}: {type(statement.value.value).__name__}"]
        else:
            raise ValueError(f"{self.cls.__name__}.{name}: no async form for {statement}")

    def _add_function(self, node: ast.FunctionDef, source: list[str]) -> None:
        name = node.name
        decorators = [ast.unparse(d) for d in node.decorator_list]
        if decorators not in ([], ["property"]):
            raise ValueError(f"{name}: no async form for decorators {decorators}")
        args = node.args
        for default in (*args.defaults, *args.kw_defaults):
            if default is not None:
                self._uses(default, annotation=False)
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None and arg.annotation is not None:
                self._uses(arg.annotation)
        if node.returns is not None:
            self._uses(node.returns)
        doc = docstring(self.cls, name)
        stub = ast.FunctionDef(
            name=name,
            args=args,
            body=[ast.Expr(ast.Constant(doc if doc else ...))],
            decorator_list=[ast.Name("property", ast.Load())] if decorators else [],
            returns=node.returns,
            type_params=[],
        )
        text = ast.unparse(ast.fix_missing_locations(stub)).splitlines()
        if not decorators:
            text[0] = "async " + text[0]
        # An override the synchronous class declares incompatible (keywords typed per
        # entity) is declared so here too.
        head = source[node.lineno - 1 : max(node.body[0].lineno - 1, node.lineno)]
        if any("type: ignore[override]" in line for line in head):
            opening, rest = text[0].split("(", 1)  # where mypy reports it: the def's line
            text[0:1] = [f"{opening}(  # type: ignore[override]", rest]
        self.lines[name] = text

    def _uses(self, node: ast.AST, *, annotation: bool = True) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                self.names.setdefault(sub.id, self.module)
            elif annotation and isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                self._uses(ast.parse(sub.value, mode="eval"))  # a quoted annotation


def async_name(cls: type) -> str:
    """The async protocol's name of a synchronous class."""
    return f"Async{cls.__name__}"


def _base(cls: type) -> type | None:
    """The nearest base of ``cls`` with members of its own (its protocol extends it)."""
    for klass in cls.__mro__[1:]:
        if klass in MEMBERS:
            return klass
    return None


def sources() -> list[tuple[str, type, str]]:
    """Each leaf protocol's name, the synchronous class it mirrors, and where it is found."""
    found: list[tuple[str, type, str]] = []
    for attribute, cls in (*REPOSITORIES.items(), *CATALOGUES.items()):
        found.append((async_name(cls), cls, f"``store.{attribute}``"))
    for attribute, cls in SERVICES.items():
        found.append((async_name(cls), cls, f"``store.{attribute}``"))
    return found


def protocol_members(cls: type) -> dict[str, str]:
    """Every member the async protocol of ``cls`` has, its own and its bases', each with
    the synchronous class that gives it."""
    given: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name in MEMBERS.get(klass, ()):
            given[name] = klass.__qualname__
    return given


def unlisted(cls: type) -> list[str]:
    """Public members of ``cls`` (and its bases of this project) in neither MEMBERS nor
    LEFT_OUT: each must be listed before the module is generated."""
    listed = set(protocol_members(cls)) | set(LEFT_OUT)
    public: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("clonestore") and klass is not typing.Protocol:
            public |= set(_own_members(klass))
    return sorted(public - listed)


def _classes() -> list[type]:
    """The classes to write a protocol for, bases before the classes extending them."""
    wanted: list[type] = []
    for _, cls, _ in sources():
        for klass in reversed(cls.__mro__):
            if klass in MEMBERS and klass not in wanted:
                wanted.append(klass)
    return wanted


def _type_vars(cls: type) -> list[typing.TypeVar]:
    return list(getattr(cls, "__parameters__", ()))


def expected_source() -> str:
    """The text of ``clonestore/async_types.py`` for the classes as they are."""
    problems = {cls.__name__: unlisted(cls) for _, cls, _ in sources()}
    problems = {name: members for name, members in problems.items() if members}
    if problems:
        raise SystemExit(
            f"public members neither in MEMBERS nor in LEFT_OUT of {__file__}: {problems}"
        )
    names: dict[str, ModuleType] = {}
    imports: dict[str, set[str]] = {"typing": {"Protocol"}}
    type_vars: dict[str, typing.TypeVar] = {}
    classes: list[str] = []
    exported: list[str] = []
    for cls in _classes():
        _, source = _class_node(cls)
        own = _own_members(cls)
        protocol = _Protocol(cls, names)
        mapping = _type_arguments(cls)
        for name in MEMBERS[cls]:
            if name not in own:
                raise SystemExit(f"{cls.__name__}.{name} is listed but not defined there")
            protocol.add(name, _Substitute(mapping.get(cls, {})).visit(own[name]), source)
        params = _type_vars(cls)
        for var in params:
            type_vars[var.__name__] = var
        generic = f"Protocol[{', '.join(v.__name__ for v in params)}]" if params else "Protocol"
        base = _base(cls)
        if base is None:
            bases = [generic]
        else:
            arguments = _type_arguments(cls)[base]
            given = ", ".join(arguments[v.__name__] for v in _type_vars(base))
            bases = [f"{async_name(base)}[{given}]" if given else async_name(base), generic]
            for value in arguments.values():
                protocol._uses(ast.parse(value, mode="eval"))
        where = next((w for n, c, w in sources() if c is cls), None)
        sync = f":class:`{cls.__module__}.{cls.__qualname__}`"
        body = [
            f'"""{where} under ``open_async``: the methods of\n{sync}, awaited."""'
            if where is not None
            else f'"""Under ``open_async``: the methods of\n{sync}, awaited,\nthat every '
            'protocol extending this one has."""'
        ]
        for lines in protocol.lines.values():
            body.append("")
            body.extend(lines)
        classes.append(
            f"class {async_name(cls)}({', '.join(bases)}):\n"
            + textwrap.indent("\n".join(body), "    ")
        )
        exported.append(async_name(cls))
    classes.extend(_attribute_protocols(names, exported))
    for name, module in names.items():
        if name in type_vars:
            continue
        home, imported = _import_line(name, module)
        if home:
            imports.setdefault(home, set()).add(imported)
    if type_vars:
        imports["typing"].add("TypeVar")
    import_lines = []
    for home in sorted(imports, key=lambda m: (not _stdlib(m), m)):
        import_lines.append(f"from {home} import {', '.join(sorted(imports[home]))}")
    first_party = [i for i, line in enumerate(import_lines) if line.startswith("from clonestore")]
    if first_party:
        import_lines.insert(first_party[0], "")
    header = _HEADER.format(
        imports="\n".join(import_lines),
        names="\n".join(f'    "{name}",' for name in sorted(exported)),
    )
    declared = "\n".join(_type_var_line(var) for var in type_vars.values())
    return _formatted(header + "\n" + declared + "\n\n\n" + "\n\n\n".join(classes) + "\n")


def _type_var_line(var: typing.TypeVar) -> str:
    constraints = "".join(f", {_text(c)}" for c in var.__constraints__)
    return f'{var.__name__} = TypeVar("{var.__name__}"{constraints})'


def _attribute_protocols(names: dict[str, ModuleType], exported: list[str]) -> list[str]:
    """``AsyncRepositories`` (a user's repositories, as an async store and a user's view
    have them) and ``AsyncCatalogues``, from the one list of repositories."""
    out = []
    for protocol, table, what in (
        ("AsyncRepositories", REPOSITORIES, "The repositories of a user's rows"),
        ("AsyncCatalogues", CATALOGUES, "The repositories of the tables no user owns"),
    ):
        lines = [f'"""{what}, awaited (``clonestore.repositories``\' list)."""', ""]
        lines += [f"{attribute}: {async_name(cls)}" for attribute, cls in table.items()]
        # A plain class of annotations (not a Protocol): the async store and view inherit it.
        out.append(f"class {protocol}:\n" + textwrap.indent("\n".join(lines), "    "))
        exported.append(protocol)
    return out


def _import_line(name: str, module: ModuleType) -> tuple[str, str]:
    if name in ("self", "None", "Protocol") or hasattr(builtins, name):
        return ("", "")
    if name.startswith("Async") and not hasattr(module, name):
        return ("", "")  # a protocol of this module
    if not hasattr(module, name):
        raise ValueError(f"{name} is not importable from {module.__name__}")
    value = getattr(module, name)
    home = getattr(value, "__module__", None)
    if isinstance(home, str) and getattr(value, "__name__", None) == name and home != "builtins":
        home = {"collections.abc": "collections.abc", "typing_extensions": "typing"}.get(home, home)
        if home.startswith("_"):
            home = module.__name__
        return (home, name)
    return (_imported_from(name, module) or module.__name__, name)


def _imported_from(name: str, module: ModuleType) -> str | None:
    """The public module that ``module`` imports ``name`` from (an alias such as
    ``query.Expr`` has no ``__module__`` of its own), if it imports it."""
    for node in ast.parse(inspect.getsource(module)).body:
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and not node.module.rsplit(".", 1)[-1].startswith("_")
            and any(alias.name == name and alias.asname is None for alias in node.names)
        ):
            return node.module
    return None


def _formatted(source: str) -> str:
    """``source`` as the project's formatter (``ruff format``) writes it."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(ASYNC_TYPES_MODULE), "-"],
        input=source, capture_output=True, text=True, check=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    return result.stdout


def _stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


def main(argv: list[str] | None = None) -> int:
    """Rewrite the module, or with ``--check`` say whether it is current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the module is stale")
    args = parser.parse_args(argv)
    expected = expected_source()
    if args.check:
        current = ASYNC_TYPES_MODULE.read_text(encoding="utf-8") == expected
        print(f"{ASYNC_TYPES_MODULE.name} is {'current' if current else 'stale'}")
        return 0 if current else 1
    ASYNC_TYPES_MODULE.write_text(expected, encoding="utf-8")
    print(f"wrote {ASYNC_TYPES_MODULE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
