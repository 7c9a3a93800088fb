"""Users, with a cascading soft delete that restore undoes exactly; export and erasure
of everything about a user."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Unpack

from clonestore.errors import ForeignKeyViolation, NotFound
from clonestore.fields import UserChanges, UserCreate
from clonestore.query import Cond, conjoin
from clonestore.records import User, to_json
from clonestore.repositories.base import Repository

__all__ = ["CASCADE_TABLES", "OWNED_TABLES", "UserRepository"]

#: What a user's soft delete hides with them, and restore brings back.
CASCADE_TABLES: Final = ("voice_models", "face_models", "documents", "memories")
#: Tables holding rows owned by a user, in the order they are erased: rows pointing at
#: others (turns and memories at sessions) before the rows they point at, so no foreign
#: key is ever broken on the way.
OWNED_TABLES: Final = ("turns", "memories", "sessions", "documents", "face_models", "voice_models")
#: The order of ``export_user``'s sections.
_EXPORT_ORDER: Final = ("voice_models", "face_models", "documents", "memories", "sessions", "turns")
#: How often ``erase`` starts over when a row of the user was added while it ran.
_ERASE_ATTEMPTS: Final = 5


class UserRepository(Repository[User]):
    """People who own clones. Emails match case-insensitively (``str.casefold``)."""

    noun = "user"
    owner_column = "id"

    if TYPE_CHECKING:  # the keywords each takes (clonestore.fields); the base class runs them

        def create(self, **fields: Unpack[UserCreate]) -> User: ...  # type: ignore[override]

        def update(  # type: ignore[override]
            self,
            id: str,
            /,
            expected_version: int | None = None,
            **changes: Unpack[UserChanges],
        ) -> User: ...

    def find_by_email(self, email: str) -> User | None:
        """The live user with this email, ignoring case; None if there is none."""
        # Emails are unique among live users, so there is at most one row: no
        # ordering needed (the engine can stop at the first index hit).
        rows = self._select("find_by_email", self._lookup("email")((email,)), (), limit=1)
        return self._load(rows[0]) if rows else None

    def _children(self) -> list[Repository[Any]]:
        return [self.repos[name] for name in CASCADE_TABLES]

    def delete(self, id: str) -> None:
        """Soft-delete the user and, with them, their live models, documents and memories."""
        id = self._check_id(id)
        with self._unit.atomic():
            now = self._clock()
            if not self._update(
                "delete", self._by_id(id), self._stamp({"deleted_at": now}), key=id
            ):
                raise NotFound(f"no user with id {id}")
            for repo in self._children():
                changes = repo._stamp({"deleted_at": now, "deleted_by_cascade": id})
                repo._update("delete", conjoin(repo._live, Cond("user_id", "eq", id)), changes)

    def restore(self, id: str) -> User:
        """Restore the user and exactly the rows their soft delete removed."""
        with self._unit.atomic():
            user = super().restore(id)
            for repo in self._children():
                where = Cond("deleted_by_cascade", "eq", user.id)
                changes = repo._stamp({"deleted_at": None, "deleted_by_cascade": None})
                repo._update("restore", where, changes)
        return user

    def hard_delete(self, id: str) -> None:
        """Remove the user and everything about them for good (see :meth:`erase`)."""
        self.erase(id)

    def _any_row(self, id: Any) -> dict[str, Any]:
        id = self._check_id(id)
        row = self._get_row(id)
        if row is None:
            raise NotFound(f"no user with id {id}")
        return row

    def export(self, id: str) -> dict[str, Any]:
        """Everything about the user (deleted or not), deleted rows and plugins'
        sections (``clonestore_export_user``) included, as JSON-ready data.

        This is ``store.export_user``.
        """
        row = self._any_row(id)
        out: dict[str, Any] = {"user": to_json(self._load(row))}
        for name in _EXPORT_ORDER:
            records = self.repos[name].find_many(where={"user_id": row["id"]}, with_deleted=True)
            out[name] = [to_json(r) for r in records]
        for section in self._gateway.export_user(row["id"]):
            out.update(to_json(dict(section)))
        return out

    def erase(self, id: str) -> dict[str, int]:
        """Remove the user (deleted or not) and every row about them, plugins' first
        (``clonestore_erase_user``), in one transaction; rows removed per table.

        This is ``store.erase_user``, the right to be forgotten.
        """
        id = self._any_row(id)["id"]
        removed: dict[str, int] = dict.fromkeys((*OWNED_TABLES, "users"), 0)
        with self._unit.atomic():
            self._gateway.erase_user(id)
            for attempt in range(_ERASE_ATTEMPTS):
                for name in OWNED_TABLES:
                    removed[name] += self.repos[name]._delete(
                        "erase_user", Cond("user_id", "eq", id)
                    )
                try:
                    with self._unit.transaction():  # a savepoint: a refused delete undoes itself
                        removed["users"] = self._delete(
                            "erase_user", Cond("id", "eq", id), key=id
                        )
                    break
                except ForeignKeyViolation:
                    # A row of the user's was added meanwhile (its creation had checked
                    # the user before this began): remove it too, and try again.
                    if attempt == _ERASE_ATTEMPTS - 1:
                        raise
        return removed
