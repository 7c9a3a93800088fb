"""Repositories of records that belong to a user."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from clonestore.errors import NotFound
from clonestore.repositories.base import Repository
from clonestore.schema import check
from clonestore.spi import Row

__all__ = ["OwnedRepository"]

R = TypeVar("R")


class OwnedRepository(Repository[R]):
    """Records with a ``user_id``: the owner must be a live user when a record is
    created or restored."""

    has_references = True

    def _check_references(self, rows: Sequence[Row]) -> None:
        users = self.repos["users"]
        for user_id in dict.fromkeys(row["user_id"] for row in rows):
            users._live_row(user_id)

    def _check_owner(self, user_id: Any) -> str:
        """``user_id``, checked; in a user's view, :class:`NotFound` unless it is the owner."""
        user_id = check(self.spec.column("user_id"), user_id)
        if self.owner is not None and user_id != self.owner:
            raise NotFound(f"no user with id {user_id}")
        return str(user_id)

    def _build(self, fields: Mapping[str, Any], **system: Any) -> R:
        if self.owner is not None and self.spec.column("user_id").settable == "create":
            # In a user's view rows belong to its owner; another user does not exist here.
            fields = {**fields, "user_id": self._check_owner(fields.get("user_id", self.owner))}
        return super()._build(fields, **system)

    def for_owner(self, user_id: str, **where: Any) -> list[R]:
        """The owner's live records, in creation order."""
        return self.find_many(where={"user_id": self._check_owner(user_id), **where})
