"""What ``clonestore/async_types.py`` must say, derived from the synchronous classes:
the generator ``tests/test_typing.py`` compares the module with (run this file to
rewrite it).

Each repository class of ``clonestore.repositories`` and each service protocol of
``clonestore.services`` gives one protocol of the same members: a method becomes
an ``async def`` with the same parameters and result (the keywords ``create`` and
``update`` take per entity included, as mypy sees them), a property or an
annotated attribute stays as it is. The source is read with :mod:`ast` (so the
``if TYPE_CHECKING:`` signatures count, as they do for mypy), class by class along
the method resolution order, a generic base's type variables replaced by the
subclass's arguments.
"""

from __future__ import annotations

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

from clonestore import services
from clonestore.repositories import CATALOGUES, REPOSITORIES

ASYNC_TYPES_MODULE = Path(__file__).resolve().parents[1] / "clonestore" / "async_types.py"

#: Public members of the synchronous classes that the async surface leaves out, and why.
LEFT_OUT: dict[str, str] = {
    "scoped": "builds the repositories of a user's view; use store.for_user(user_id)",
}

_HEADER = '''"""The types of the awaited API of :func:`clonestore.open_async`.

One protocol per repository (``store.users`` is an :class:`AsyncUserRepository`)
and per built-in service (``store.cache`` is an :class:`AsyncCacheService`): the
members of the synchronous class, each method an ``async def`` with the same
parameters and result. So ``await store.users.create(email=..., nmae=...)`` and
``await store.usres.count()`` are type errors under mypy --strict, as they are
with :func:`clonestore.open`.

Generated from the synchronous classes by ``tests/typing_async.py`` (``python
tests/typing_async.py`` rewrites it); ``tests/test_typing.py`` fails when the
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


def _class_body(cls: type) -> list[ast.stmt]:
    """The statements of a class body, those of ``if TYPE_CHECKING:`` blocks in place
    of the run-time ones they declare (mypy reads them)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    node = tree.body[0]
    assert isinstance(node, ast.ClassDef)
    plain: list[ast.stmt] = []
    declared: list[ast.stmt] = []
    for statement in node.body:
        if isinstance(statement, ast.If) and ast.unparse(statement.test) == "TYPE_CHECKING":
            declared.extend(statement.body)
        else:
            plain.append(statement)
    return declared + plain  # the first definition of a name wins


def _type_arguments(leaf: type) -> dict[type, dict[str, str]]:
    """For each generic class in ``leaf``'s MRO, its type variables' names -> the types
    ``leaf`` gives them (as source text)."""
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


class _Members:
    """The members of one protocol, and the names their annotations use."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = {}
        self.names: dict[str, ModuleType] = {}  # name used -> the module it is read from

    def add_class(self, cls: type, mapping: dict[str, str]) -> None:
        module = sys.modules[cls.__module__]
        substitute = _Substitute(mapping)
        for statement in _class_body(cls):
            if isinstance(statement, ast.FunctionDef):
                self._add_function(statement, substitute, module)
            elif (
                isinstance(statement, ast.Assign)
                and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)
                and isinstance(statement.value, ast.Constant)
            ):  # an attribute typed by its value (``has_references = True``)
                name = statement.targets[0].id
                if not (name.startswith("_") or name in self.lines or name in LEFT_OUT):
                    self.lines[name] = [f"{name}: {type(statement.value.value).__name__}"]
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                name = statement.target.id
                if name.startswith("_") or name in self.lines or name in LEFT_OUT:
                    continue
                annotation = substitute.visit(statement.annotation)
                if ast.unparse(annotation).startswith(("Final", "ClassVar")):
                    continue
                self._uses(annotation, module)
                self.lines[name] = [f"{name}: {ast.unparse(annotation)}"]

    def _add_function(
        self, node: ast.FunctionDef, substitute: _Substitute, module: ModuleType
    ) -> None:
        name = node.name
        if name.startswith("_") or name in self.lines or name in LEFT_OUT:
            return
        decorators = [ast.unparse(d) for d in node.decorator_list]
        if decorators not in ([], ["property"]):
            raise ValueError(f"{name}: no async form for decorators {decorators}")
        args = substitute.visit(node.args)
        for default in (*args.defaults, *args.kw_defaults):
            if default is not None:
                self._uses(default, module, annotation=False)
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None and arg.annotation is not None:
                self._uses(arg.annotation, module)
        returns = substitute.visit(node.returns) if node.returns is not None else None
        if returns is not None:
            self._uses(returns, module)
        stub = ast.FunctionDef(
            name=name,
            args=args,
            body=[ast.Expr(ast.Constant(...))],
            decorator_list=[ast.Name("property", ast.Load())] if decorators else [],
            returns=returns,
            type_params=[],
        )
        text = ast.unparse(ast.fix_missing_locations(stub))
        if not decorators:
            text = "async " + text
        self.lines[name] = text.splitlines()

    def _uses(self, node: ast.AST, module: ModuleType, *, annotation: bool = True) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                self.names.setdefault(sub.id, module)
            elif annotation and isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                self._uses(ast.parse(sub.value, mode="eval"), module)  # a quoted annotation


def _protocol(cls: type) -> _Members:
    members = _Members()
    mapping = _type_arguments(cls)
    for klass in cls.__mro__:
        if klass.__module__.startswith("clonestore") and klass is not typing.Protocol:
            members.add_class(klass, mapping.get(klass, {}))
    return members


#: (async protocol name, synchronous class, what it types).
def sources() -> list[tuple[str, type, str]]:
    """Each protocol's name, the synchronous class it mirrors, and where it is found."""
    found: list[tuple[str, type, str]] = []
    for attribute, cls in (*REPOSITORIES.items(), *CATALOGUES.items()):
        found.append((f"Async{cls.__name__}", cls, f"``store.{attribute}``"))
    for attribute, name in (
        ("cache", "CacheService"),
        ("ratelimit", "RateLimitService"),
        ("audit", "AuditService"),
    ):
        found.append((f"Async{name}", getattr(services, name), f"``store.{attribute}``"))
    return found


def _import_line(name: str, module: ModuleType) -> tuple[str, str]:
    if name in ("self", "None", "Protocol") or hasattr(builtins, name):
        return ("", "")
    if not hasattr(module, name):
        raise ValueError(f"{name} is not importable from {module.__name__}")
    value = getattr(module, name)
    home = getattr(value, "__module__", None)
    if isinstance(home, str) and getattr(value, "__name__", None) == name and home != "builtins":
        home = {"collections.abc": "collections.abc", "typing_extensions": "typing"}.get(home, home)
        if home.startswith("_"):
            home = module.__name__
        return (home, name)
    return (module.__name__, name)


def expected_source() -> str:
    """The text of ``clonestore/async_types.py`` for the classes as they are."""
    imports: dict[str, set[str]] = {"typing": {"Protocol"}}
    classes: list[str] = []
    names: list[str] = []
    for protocol, cls, where in sources():
        members = _protocol(cls)
        for name, module in members.names.items():
            home, imported = _import_line(name, module)
            if home:
                imports.setdefault(home, set()).add(imported)
        body = [
            f'"""{where} under ``open_async``: the methods of\n'
            f':class:`{cls.__module__}.{cls.__name__}`, awaited."""',
        ]
        for lines in members.lines.values():
            body.append("")
            body.extend(lines)
        classes.append(f"class {protocol}(Protocol):\n" + textwrap.indent("\n".join(body), "    "))
        names.append(protocol)
    import_lines = []
    for home in sorted(imports, key=lambda m: (not _stdlib(m), m)):
        import_lines.append(f"from {home} import {', '.join(sorted(imports[home]))}")
    first_party = [i for i, line in enumerate(import_lines) if line.startswith("from clonestore")]
    if first_party:
        import_lines.insert(first_party[0], "")
    header = _HEADER.format(
        imports="\n".join(import_lines),
        names="\n".join(f'    "{name}",' for name in sorted(names)),
    )
    return _formatted(header + "\n\n" + "\n\n\n".join(classes) + "\n")


def _formatted(source: str) -> str:
    """``source`` as the project's formatter (``ruff format``) writes it."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(ASYNC_TYPES_MODULE), "-"],
        input=source, capture_output=True, text=True, check=True, timeout=120,
        cwd=ASYNC_TYPES_MODULE.parents[1],
    )  # fmt: skip
    return result.stdout


def _stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names


if __name__ == "__main__":
    ASYNC_TYPES_MODULE.write_text(expected_source(), encoding="utf-8")
    print(f"wrote {ASYNC_TYPES_MODULE}")
