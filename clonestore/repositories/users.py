"""Users, with a cascading soft delete that restore undoes exactly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from clonestore.errors import NotFound
from clonestore.query import Cond, conjoin
from clonestore.records import User
from clonestore.repositories.base import Repository

if TYPE_CHECKING:
    from clonestore.repositories.owned import OwnedRepository

__all__ = ["CASCADE_TABLES", "UserRepository"]

#: What a user's soft delete hides with them, and restore brings back.
CASCADE_TABLES: Final = ("voice_models", "face_models", "documents", "memories")


class UserRepository(Repository[User]):
    """People who own clones. Emails match case-insensitively (``str.casefold``)."""

    noun = "user"
    owner_column = "id"

    def find_by_email(self, email: str) -> User | None:
        """The live user with this email, ignoring case; None if there is none."""
        # Emails are unique among live users, so there is at most one row: no
        # ordering needed (the engine can stop at the first index hit).
        rows = self._select("find_by_email", self._where({"email": email}), (), limit=1)
        return self._load(rows[0]) if rows else None

    def _children(self) -> list[OwnedRepository[object]]:
        return [getattr(self.repos, name) for name in CASCADE_TABLES]

    def delete(self, id: str) -> None:
        """Soft-delete the user and, with them, their live models, documents and memories."""
        id = self._check_id(id)
        with self._gateway.atomic():
            now = self.store.clock()
            if not self._update(
                "delete", self._by_id(id), self._stamp({"deleted_at": now}), key=id
            ):
                raise NotFound(f"no user with id {id}")
            for repo in self._children():
                changes = repo._stamp({"deleted_at": now, "deleted_by_cascade": id})
                repo._update("delete", conjoin(repo._live, Cond("user_id", "eq", id)), changes)

    def restore(self, id: str) -> User:
        """Restore the user and exactly the rows their soft delete removed."""
        with self._gateway.atomic():
            user = super().restore(id)
            for repo in self._children():
                where = Cond("deleted_by_cascade", "eq", user.id)
                changes = repo._stamp({"deleted_at": None, "deleted_by_cascade": None})
                repo._update("restore", where, changes)
        return user

    def hard_delete(self, id: str) -> None:
        """Remove the user and everything they own for good (see ``store.erase_user``)."""
        id = self._check_id(id)
        if self._get_row(id) is None:
            raise NotFound(f"no user with id {id}")
        self.store.erase_user(id)
