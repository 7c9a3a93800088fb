"""Fixtures of the platform's tests, over the clonestore pytest plugin's ``store_factory``.

The backend is whatever the plugin is told: ``memory://`` by default,
``--clonestore-url=sqlite:///...`` or ``postgresql://...`` for the others
(clonestore's ``tests/test_examples.py`` runs them on its backend matrix).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Import the example package from its checkout (it is not installed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from character_platform import CharacterPlatform

from clonestore import Store, User
from clonestore.testing import FrozenClock
from clonestore.testing.plugin import StoreFactory


@pytest.fixture
def clock() -> FrozenClock:
    """A clock that moves a millisecond per call, so creation order is unambiguous."""
    return FrozenClock(step=0.001)


@pytest.fixture
def platform(store_factory: StoreFactory, clock: FrozenClock) -> Store:
    """A clean store with the Character Creation Platform plugin."""
    return store_factory(plugins=[CharacterPlatform()], clock=clock)


@pytest.fixture
def ada(platform: Store) -> User:
    """A free-tier user."""
    user: User = platform.users.create(email="ada@example.com", name="Ada")
    return user


@pytest.fixture
def bob(platform: Store) -> User:
    """Another free-tier user."""
    user: User = platform.users.create(email="bob@example.com", name="Bob")
    return user
