"""Specializations: the catalogue of specialised models clones can use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Unpack

from clonestore.fields import SpecializationChanges, SpecializationCreate
from clonestore.records import Specialization
from clonestore.repositories.base import Repository

__all__ = ["SpecializationRepository"]


class SpecializationRepository(Repository[Specialization]):
    """Specialised models (``name`` unique, ``description``, ``model_path``).

    A catalogue shared by every user: no user owns a specialization, so a
    user's view (``store.for_user``) does not include this repository.
    """

    noun = "specialization"

    if TYPE_CHECKING:  # the keywords each takes (clonestore.fields); the base class runs them

        def create(self, **fields: Unpack[SpecializationCreate]) -> Specialization: ...  # type: ignore[override]

        def update(  # type: ignore[override]
            self,
            id: str,
            /,
            expected_version: int | None = None,
            **changes: Unpack[SpecializationChanges],
        ) -> Specialization: ...

    def find_by_name(self, name: str) -> Specialization | None:
        """The specialization called ``name`` (exactly), or None."""
        rows = self._select("find_by_name", self._lookup("name")((name,)), (), limit=1)
        return self._load(rows[0]) if rows else None
