"""The storage SPI's version: backends of an older SPI keep working, warned of what concerns
them; backends of a newer one are refused; the guide's changelog lists every change."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from clonestore_memory import MemoryBackend

import clonestore
from clonestore import ConfigurationError, hookimpl
from clonestore.spi_versions import CHANGES, SPI_VERSION, check_spi_version

GUIDE = Path(__file__).parents[1] / "docs" / "backend-guide.md"


class _Serves:
    """A plugin serving one backend class under the scheme ``versioned``."""

    def __init__(self, backend: type[Any]) -> None:
        self.backend = backend

    @hookimpl
    def clonestore_backends(self) -> dict[str, Any]:
        return {"versioned": lambda url, **options: self.backend()}


def _open(backend: type[Any]) -> tuple[clonestore.Store, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = clonestore.open("versioned://", plugins=[_Serves(backend)])
    return store, [w for w in caught if issubclass(w.category, DeprecationWarning)]


class SpiOne(MemoryBackend):
    """A backend written against SPI 1, as every backend before versions was."""

    spi_version = 1


class SpiOneWithConnectionParams(SpiOne):
    capabilities = frozenset({"connection_params"})

    def connection_params(self) -> dict[str, Any]:
        return {"dbname": "memory"}


def test_a_backend_of_the_first_spi_keeps_working_without_warnings():
    """A backend of SPI 1 declaring nothing retired opens and works, unwarned."""
    store, caught = _open(SpiOne)
    with store:
        user = store.users.create(email="a@example.com", name="A")
        assert store.users.get(user.id) == user
    assert caught == []


def test_an_absent_spi_version_means_the_first():
    """A backend without spi_version is of SPI 1: accepted, and warned only of what concerns
    it (the jsonfile example, which declares none, passes the kit: tests/test_examples.py)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_spi_version(SimpleNamespace(name="plain", capabilities=frozenset()))
        assert caught == []
        check_spi_version(SimpleNamespace(name="old", capabilities={"connection_params"}))
    assert [str(w.message).split(";")[0] for w in caught] == [
        "the old backend is written for storage SPI 1"
    ]


def test_a_retired_capability_is_warned_by_name():
    """An SPI 1 backend declaring connection_params opens, warned with the change's name."""
    store, caught = _open(SpiOneWithConnectionParams)
    with store:
        assert store.users.count() == 0
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "storage SPI 1" in message
    assert f"SPI {SPI_VERSION} changed connection_params" in message


def test_a_backend_of_a_newer_spi_is_refused():
    """A backend written for a newer SPI than this clonestore is refused, saying to upgrade."""

    class Newer(MemoryBackend):
        spi_version = SPI_VERSION + 1

    with pytest.raises(ConfigurationError, match="upgrade clonestore"):
        clonestore.open("versioned://", plugins=[_Serves(Newer)])


@pytest.mark.parametrize("version", ["2", 0, True, 2.0])
def test_a_malformed_spi_version_is_refused(version: Any):
    """spi_version must be an int from 1 to the current version."""

    class Odd(MemoryBackend):
        spi_version = version

    with pytest.raises(ConfigurationError, match="spi_version"):
        check_spi_version(Odd())


def test_built_in_backends_declare_the_current_spi(store):
    """memory://, sqlite:// and postgresql:// are written against the current SPI."""
    assert store.backend.spi_version == SPI_VERSION


def test_the_guide_changelog_lists_every_change():
    """The backend guide's changelog names every change of clonestore.spi_versions.CHANGES."""
    text = GUIDE.read_text(encoding="utf-8")
    match = re.search(r"^## \d+\. Changelog of the SPI\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "the backend guide has no changelog section"
    section = match.group(1)
    missing = [c.subject for c in CHANGES if f"`{c.subject}`" not in section]
    assert missing == []
    assert f"SPI {SPI_VERSION}" in section
