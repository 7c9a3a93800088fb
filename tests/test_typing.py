"""The typed surface: what mypy --strict sees of clonestore from an application outside
the repository (repositories and services as typed attributes, create/update keywords
per entity, records as frozen dataclasses), and the run-time checks that match it."""

from __future__ import annotations

import collections
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import clonestore
from clonestore import ValidationError
from clonestore import services as service_types
from tools import generate_async_types, generate_fields

from .installed_wheel import install_wheel

APP = '''
from decimal import Decimal

import clonestore
from clonestore_audit import audit_of

store = clonestore.open("memory://", plugins=["cache", "ratelimit", "audit"])
user = store.users.create(email="ada@example.com", name="Ada", personality_traits=["curious"])
user = store.users.update(user.id, expected_version=1, name="Ada L")
name: str | None = user.name
voice = store.voice_models.create(user_id=user.id, name="v", provider="p")
session = store.sessions.create(user_id=user.id, voice_model_id=voice.id)
turn = store.sessions.add_turn(session.id, user_transcript="hi", llm_cost=Decimal("0.002"))
memory = store.memories.create(user_id=user.id, content="likes jazz", embedding=[1.0, 0.0])
store.cache.set_embedding("q", [0.5, 0.5])
hit: list[float] | None = store.cache.get_embedding("q")
store.ratelimit.check_and_increment(user.id, "chat", 10, 60)
entries = audit_of(store).find(limit=5)
seq: int = entries[0].seq
copy = clonestore.User(
    id=user.id, created_at=user.created_at, updated_at=user.updated_at, version=1,
    email="b@example.com", name="B",
)
store.close()
'''

ASYNC_APP = '''
import asyncio
from decimal import Decimal

import clonestore


async def main() -> None:
    async with clonestore.open_async("memory://", plugins=["cache", "ratelimit"]) as store:
        user = await store.users.create(email="ada@example.com", name="Ada")
        user = await store.users.update(user.id, expected_version=1, name="Ada L")
        name: str | None = user.name
        async with store.transaction():
            session = await store.sessions.create(user_id=user.id)
            turn = await store.sessions.add_turn(session.id, llm_cost=Decimal("0.002"))
        index: int = turn.turn_index
        page = await store.users.page(size=10)
        first: clonestore.User = page.items[0]
        mine = store.for_user(user.id)
        found = await mine.sessions.for_owner(user.id)
        count: int = len(found) + await store.specializations.count()
        await store.cache.set_embedding("q", [0.5, 0.5])
        hit: list[float] | None = await store.cache.get_embedding("q")
        await store.ratelimit.check_and_increment(user.id, "chat", 10, 60)
        ok: bool = (await store.health())["ok"]

    store2 = await clonestore.open_async("memory://")
    await store2.close()


asyncio.run(main())
'''

#: Each line a mistake mypy must report (the marker names the error code).
TYPOS = '''
import clonestore

store = clonestore.open("memory://", plugins=["cache"])
store.usres.count()  # E: attr-defined
store.users.create(email="ada@example.com", nmae="Ada")  # E: call-arg
store.users.create(name="Ada")  # E: call-arg
store.users.update("id", version=2)  # E: call-arg
store.users.create(email="a@example.com", name="A", personality_traits="curious")  # E: arg-type
store.documents.create(user_id="u", filename="f", size_bytes="big")  # E: arg-type
store.cache.get_embeding("q")  # E: attr-defined
user = store.users.get("id")
user.name = "changed"  # E: misc
clonestore.User(name="Ada")  # E: call-arg
'''

ASYNC_TYPOS = '''
import clonestore


async def main() -> None:
    store = await clonestore.open_async("memory://", plugins=["cache"])
    await store.usres.count()  # E: attr-defined
    await store.users.create(email="ada@example.com", nmae="Ada")  # E: call-arg
    await store.users.update("id", version=2)  # E: call-arg
    await store.documents.create(user_id="u", filename="f", size_bytes="big")  # E: arg-type
    await store.cache.get_embeding("q")  # E: attr-defined
    user = await store.users.get("id")
    user.name = "changed"  # E: misc
    name: str = store.users.get("id").name  # E: attr-defined
    await store.for_user("u").sessions.add_trun("s")  # E: attr-defined
    bad: int = await store.users.find_by_email("a@example.com")  # E: assignment
'''


@pytest.fixture(scope="module")
def installed_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh virtualenv with clonestore's wheel installed, as an
    application outside this repository has it (see tests/installed_wheel.py)."""
    return install_wheel(tmp_path_factory) / "bin" / "python"


def _mypy(directory: Path, python: Path, *files: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(directory / ".mypy"),
         "--python-executable", str(python),
         "--no-error-summary", "--show-error-codes", *files],
        cwd=directory, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("app", "typos"), [(APP, TYPOS), (ASYNC_APP, ASYNC_TYPOS)], ids=["open", "open_async"]
)
def test_mypy_strict_passes_an_app_and_reports_each_typo(
    tmp_path: Path, installed_python: Path, app: str, typos: str
) -> None:
    """Outside the repository, against the installed wheel, mypy --strict passes an app
    and reports every deliberate typo, with the synchronous API and with the awaited one."""
    (tmp_path / "app.py").write_text(textwrap.dedent(app), encoding="utf-8")
    (tmp_path / "typos.py").write_text(textwrap.dedent(typos), encoding="utf-8")
    result = _mypy(tmp_path, installed_python, "app.py", "typos.py")
    output = result.stdout + result.stderr
    assert "Cannot find implementation or library stub" not in output, output
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert [e for e in errors if not e.startswith("typos.py:")] == [], output
    lines = textwrap.dedent(typos).splitlines()
    expected = {
        (number, line.rsplit("# E: ", 1)[1])
        for number, line in enumerate(lines, 1)
        if "# E: " in line
    }
    found = {
        (int(e.split(":")[1]), e.rsplit("[", 1)[1].rstrip("]")) for e in errors if "[" in e
    }
    assert expected <= found, output
    assert {number for number, _ in found} == {number for number, _ in expected}, output
    assert result.returncode == 1


def test_fields_module_is_generated_from_the_records() -> None:
    """clonestore/fields.py is what tools/generate_fields.py derives from the records."""
    assert generate_fields.FIELDS_MODULE.read_text(encoding="utf-8") == (
        generate_fields.expected_source()
    ), "clonestore/fields.py is stale: run python tools/generate_fields.py"


def test_async_types_module_is_generated_from_the_sync_classes() -> None:
    """clonestore/async_types.py is what tools/generate_async_types.py derives from the
    synchronous repositories and service protocols (its --check, as a test)."""
    assert generate_async_types.main(["--check"]) == 0, (
        "clonestore/async_types.py is stale: run python tools/generate_async_types.py"
    )


@pytest.mark.parametrize(
    ("protocol", "sync"),
    [(name, cls) for name, cls, _ in generate_async_types.sources()],
    ids=[name for name, _, _ in generate_async_types.sources()],
)
def test_each_async_protocol_mirrors_its_sync_class_name_for_name(
    protocol: str, sync: type
) -> None:
    """Every public member of the synchronous class is in the generator's member list or
    left out with a reason; each listed method is a coroutine of the async protocol (its
    own or a base protocol's) with the same parameters and docstring, nothing more; the
    AsyncStore is typed by it."""
    import clonestore.async_types as async_types

    typed = getattr(async_types, protocol)
    assert generate_async_types.unlisted(sync) == [], protocol
    listed = generate_async_types.protocol_members(sync)

    def public(cls: type) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass.__module__.startswith("clonestore"):
                found.update(vars(klass))
                found.update(dict.fromkeys(getattr(klass, "__annotations__", {}), None))
        return {n: v for n, v in found.items() if not n.startswith("_")}

    members, mirrored = public(sync), public(typed)
    assert set(mirrored) == set(listed), protocol
    assert not set(mirrored) & set(generate_async_types.LEFT_OUT), protocol
    for name in listed:
        member = members[name]
        if isinstance(member, property):
            assert isinstance(mirrored[name], property), f"{protocol}.{name}"
            continue
        assert inspect.iscoroutinefunction(mirrored[name]), f"{protocol}.{name}"
        if name not in ("create", "update"):  # their keywords are typed per entity
            assert list(inspect.signature(mirrored[name]).parameters) == list(
                inspect.signature(member).parameters
            ), f"{protocol}.{name}"
        giver = next(c for c in sync.__mro__ if c.__qualname__ == listed[name])
        doc = generate_async_types.docstring(giver, name)
        assert inspect.getdoc(mirrored[name]) == doc, f"{protocol}.{name}"
    attribute = next(a for n, c, a in generate_async_types.sources() if n == protocol).strip("`")
    declared = collections.ChainMap(
        *(vars(c).get("__annotations__", {}) for c in clonestore.AsyncStore.__mro__)
    )
    assert declared[attribute.split(".")[1]] == protocol


def test_the_repositories_are_listed_once() -> None:
    """The stores, the user's views and the async protocols take the list of repositories
    from clonestore.repositories (its Repositories and Catalogues annotations)."""
    from clonestore._tenancy import UserView
    from clonestore.async_types import AsyncCatalogues, AsyncRepositories
    from clonestore.repositories import CATALOGUES, REPOSITORIES, Catalogues, Repositories

    assert list(REPOSITORIES) == list(Repositories.__annotations__)
    assert list(CATALOGUES) == list(Catalogues.__annotations__)
    assert list(AsyncRepositories.__annotations__) == list(REPOSITORIES)
    assert list(AsyncCatalogues.__annotations__) == list(CATALOGUES)
    assert issubclass(clonestore.Store, Repositories)
    assert issubclass(clonestore.Store, Catalogues)
    assert issubclass(UserView, Repositories)
    assert issubclass(clonestore.AsyncStore, AsyncRepositories)
    for cls in (clonestore.Store, UserView, clonestore.AsyncStore):  # not written again
        assert not set(vars(cls).get("__annotations__", {})) & set(REPOSITORIES), cls


def test_a_misspelt_field_is_a_validation_error_at_run_time() -> None:
    """What mypy refuses is refused when it runs too: ValidationError naming the field."""
    with clonestore.open("memory://") as store:
        with pytest.raises(ValidationError, match="nmae"):
            store.users.create(email="ada@example.com", nmae="Ada")  # type: ignore[call-arg]
        user = store.users.create(email="ada@example.com", name="Ada")
        with pytest.raises(ValidationError, match="version"):
            store.users.update(user.id, version=2)  # type: ignore[call-arg]
        with pytest.raises(AttributeError, match="usres"):
            store.usres  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.parametrize(
    ("protocol", "documented"),
    [
        (
            service_types.CacheService,
            {"set_embedding", "get_embedding", "set_vector_search_results",
             "get_vector_search_results", "set_llm_response", "get_llm_response",
             "clean_expired", "stats"},
        ),
        (
            service_types.RateLimitService,
            {"check_and_increment", "status", "cleanup", "usage"},
        ),
        (
            service_types.AuditService,
            {"log", "find_by_user", "find", "user_statistics", "purge", "verify"},
        ),
    ],
    ids=["cache", "ratelimit", "audit"],
)  # fmt: skip
def test_service_protocols_cover_the_documented_api(protocol: type, documented: set[str]) -> None:
    """store.cache/ratelimit/audit are typed with every method the design documents."""
    members = {name for name in vars(protocol) if not name.startswith("_")}
    assert documented <= members
    assert protocol.__name__ in clonestore.Store.__annotations__.values()
