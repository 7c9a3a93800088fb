"""Repositories of records that belong to a user."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from clonestore.repositories.base import Repository
from clonestore.spi import Row

__all__ = ["OwnedRepository"]

R = TypeVar("R")


class OwnedRepository(Repository[R]):
    """Records with a ``user_id``: the owner must be a live user when a record is
    created or restored."""

    has_references = True

    def _check_references(self, rows: Sequence[Row]) -> None:
        users = self.store.users
        for user_id in dict.fromkeys(row["user_id"] for row in rows):
            users._live_row(user_id)

    def for_owner(self, user_id: str, **where: Any) -> list[R]:
        """The owner's live records, in creation order."""
        return self.find_many(where={"user_id": user_id, **where})
