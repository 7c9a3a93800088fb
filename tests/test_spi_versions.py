"""One version for the backend and dialect APIs until 1.0 (clonestore.spi.API_VERSION), with
one changelog: a backend or dialect written for a newer version is refused, saying to upgrade;
a malformed version is refused; the built-in ones declare the current version; the backend
guide's changelog has the current version's entry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from clonestore_memory import MemoryBackend

import clonestore
from clonestore import ConfigurationError, hookimpl
from clonestore.spi import API_VERSION, check_api_version

GUIDE = Path(__file__).parents[1] / "docs" / "backend-guide.md"


class _Serves:
    """A plugin serving one backend class under the scheme ``versioned``."""

    def __init__(self, backend: type[Any]) -> None:
        self.backend = backend

    @hookimpl
    def clonestore_backends(self) -> dict[str, Any]:
        return {"versioned": lambda url, **options: self.backend()}


def test_a_backend_without_a_version_opens():
    """A backend declaring no api_version (the jsonfile example) opens and works."""

    class Plain(MemoryBackend):
        def __getattribute__(self, name: str) -> Any:
            if name == "api_version":
                raise AttributeError(name)
            return super().__getattribute__(name)

    assert not hasattr(Plain(), "api_version")
    with clonestore.open("versioned://", plugins=[_Serves(Plain)]) as store:
        user = store.users.create(email="a@example.com", name="A")
        assert store.users.get(user.id) == user


def test_a_backend_of_a_newer_api_is_refused():
    """A backend written for a newer API than this clonestore is refused, saying to upgrade."""

    class Newer(MemoryBackend):
        api_version = API_VERSION + 1

    with pytest.raises(ConfigurationError, match="upgrade clonestore"):
        clonestore.open("versioned://", plugins=[_Serves(Newer)])


@pytest.mark.parametrize("version", ["2", 0, True, 2.0])
def test_a_malformed_api_version_is_refused(version: Any):
    """api_version must be an int from 1 to the current version."""
    with pytest.raises(ConfigurationError, match="api_version"):
        check_api_version("the odd backend", version)


def test_built_in_backends_declare_the_current_api(store):
    """memory://, sqlite://, postgresql:// and mariadb:// are written against the current API."""
    assert store.backend.api_version == API_VERSION


def test_the_guide_has_one_changelog_with_the_current_version():
    """The backend guide has one changelog, of the backend and dialect APIs together, whose
    first entry is the current version."""
    text = GUIDE.read_text(encoding="utf-8")
    sections = re.findall(r"^## \d+\. Changelog.*$", text, re.M)
    assert sections == ["## 10. Changelog of the backend and dialect APIs"], sections
    section = text.split(sections[0], 1)[1].split("\n## ", 1)[0]
    entries = re.findall(r"^\*\*API (\d+)\*\*", section, re.M)
    assert entries, "no **API N** entry"
    assert int(entries[0]) == API_VERSION, entries
