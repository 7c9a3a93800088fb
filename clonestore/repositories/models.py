"""Voice and face models: at most one active per user, switched atomically."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeVar, Unpack

from clonestore.errors import AlreadyExists, Conflict
from clonestore.fields import FaceModelChanges, FaceModelCreate, VoiceModelChanges, VoiceModelCreate
from clonestore.query import Cond, conjoin
from clonestore.records import FaceModel, VoiceModel
from clonestore.repositories.owned import OwnedRepository

__all__ = [
    "ACTIVATION_ATTEMPTS",
    "CloneModelRepository",
    "FaceModelRepository",
    "VoiceModelRepository",
]

M = TypeVar("M", VoiceModel, FaceModel)

#: How often ``activate`` retries when a concurrent activation for the same user wins.
ACTIVATION_ATTEMPTS: Final = 5


class CloneModelRepository(OwnedRepository[M]):
    """Shared by voice and face models."""

    def activate(self, id: str) -> M:
        """Make this model the user's only active one, atomically.

        The switch happens in one transaction, and a unique index on the active
        model per user means no reader ever sees two active models.
        """
        id = self._check_id(id)
        refusals = 0
        for _ in range(ACTIVATION_ATTEMPTS):
            try:
                with self._unit.atomic():
                    row = self._live_row(id)
                    others = conjoin(
                        self._live,
                        Cond("user_id", "eq", row["user_id"]),
                        Cond("is_active", "eq", True),
                        Cond("id", "ne", id),
                    )
                    self._update("deactivate", others, self._stamp({"is_active": False}))
                    # Decide on the row as it is now, not as first read: a concurrent
                    # activation may have deactivated it since.
                    inactive = conjoin(
                        self._by_id(id, owner=row["user_id"]), Cond("is_active", "eq", False)
                    )
                    rows = self._update(
                        "activate", inactive, self._stamp({"is_active": True}), key=id
                    )
                    if rows:
                        return self._load(rows[0])
                    current = self._live_row(id)
                    if current["is_active"]:
                        return self._load(current)
                    raise Conflict(f"{self.noun} {id} changed during activation")  # retried
            except AlreadyExists:
                # Another activation for this user committed first; nothing of this
                # attempt remains.
                refusals += 1
            except Conflict:
                # The two collided and the engine rolled this one back (a deadlock).
                continue
        if refusals == ACTIVATION_ATTEMPTS:
            # Every attempt was refused by the one-active-model constraint, although this
            # attempt had just deactivated every other live active model: the backend's
            # constraint counts rows it must not.
            raise Conflict(
                f"could not activate {self.noun} {id}: the backend's unique constraint on the "
                f"user's active {self.noun} refused it {refusals} times, also after every other "
                "live model was deactivated; unless as many activations raced it, the "
                "constraint counts soft-deleted rows (a live-rows-only unique constraint is "
                "missing: see the backend guide, Table specs)"
            )
        raise Conflict(f"could not activate {self.noun} {id}: concurrent activations kept winning")

    def deactivate(self, id: str) -> M:
        """Make this model inactive (the user then has no active model of this kind)."""
        id = self._check_id(id)
        rows = self._update(
            "deactivate", self._by_id(id), self._stamp({"is_active": False}), key=id
        )
        if not rows:
            self._live_row(id)
        return self._load(rows[0])

    def active_for(self, user_id: str) -> M | None:
        """The user's active model, or None."""
        where = self._lookup("user_id", "is_active")((self._check_owner(user_id), True))
        rows = self._select("find_one", where, self._creation_order, limit=1)
        return self._load(rows[0]) if rows else None


class VoiceModelRepository(CloneModelRepository[VoiceModel]):
    """A person's cloned voices."""

    noun = "voice_model"

    if TYPE_CHECKING:  # the keywords each takes (clonestore.fields); the base class runs them

        def create(self, **fields: Unpack[VoiceModelCreate]) -> VoiceModel: ...  # type: ignore[override]

        def update(  # type: ignore[override]
            self,
            id: str,
            /,
            expected_version: int | None = None,
            **changes: Unpack[VoiceModelChanges],
        ) -> VoiceModel: ...


class FaceModelRepository(CloneModelRepository[FaceModel]):
    """A person's cloned faces."""

    noun = "face_model"

    if TYPE_CHECKING:  # the keywords each takes (clonestore.fields); the base class runs them

        def create(self, **fields: Unpack[FaceModelCreate]) -> FaceModel: ...  # type: ignore[override]

        def update(  # type: ignore[override]
            self,
            id: str,
            /,
            expected_version: int | None = None,
            **changes: Unpack[FaceModelChanges],
        ) -> FaceModel: ...
