"""A user's view of a store: repositories that see and change only that user's rows.

``store.for_user(user_id)`` returns a :class:`UserView`. Its repositories are
the store's own, limited to one owner (written once over the SPI, like every
repository): every expression they send to the backend is conjoined with
``user_id == owner`` (``id == owner`` on users), and every row they read by id
is checked against the owner. So, on every backend:

* another user's row is :class:`~clonestore.NotFound` for every operation by
  id (``get``, ``update``, ``delete``, ``restore``, ``hard_delete``,
  ``activate``, ``update_state``, ``add_turn``, ``end``, ``update_status``,
  ``set_vector_ids``...): its existence is not revealed;
* ``find_many``, ``find_one``, ``page``, ``count``, ``exists`` and
  ``update_many`` see and touch only the owner's rows;
* ``create`` sets ``user_id`` to the owner; giving another user's id is
  :class:`~clonestore.NotFound` (as for a user that does not exist), and
  creating users through a view is a :class:`~clonestore.ValidationError`;
* operations taking a ``user_id`` (``similar``, ``search_by_tags``,
  ``active_for``, ``user_statistics``, ``for_owner``) raise
  :class:`~clonestore.NotFound` for any other user;
* ``export_user()`` and ``erase_user()`` act on the owner only.

A view is cheap (no query is made to build one): make one per request.

On a backend with capability ``row_security`` (PostgreSQL opened with
``row_security=on``), the engine holds the view to the owner's rows too: its calls
reach the backend as the owner's (:mod:`clonestore._row_security`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any, cast

from clonestore._operations import ACTING_USER
from clonestore._unit_of_work import UnitOfWork
from clonestore.errors import NotFound
from clonestore.repositories import (
    REPOSITORIES,
    Repositories,
    Repository,
    UserRepository,
)
from clonestore.schema import check

__all__ = ["UserView"]


class UserView(Repositories):
    """The repositories of a store limited to the rows of one user (``user_id``).

    :param repositories: the store's repositories by table name.
    :param unit: the store's unit of work (``transaction()``).
    """

    def __init__(
        self, repositories: Mapping[str, Repository[Any]], unit: UnitOfWork, user_id: str
    ) -> None:
        users = cast(UserRepository, repositories["users"])
        self.user_id: str = check(users.spec.column("id"), user_id)
        self._unit = unit
        gateway = users.context.gateway
        # On a backend holding the engine to the view too, every call goes through the
        # gateway acting as the user (see clonestore._row_security).
        acting = (
            gateway.acting_as(self.user_id)
            if "row_security" in gateway.capabilities
            else None
        )
        self._acting = acting is not None
        scoped: dict[str, Repository[Any]] = {}
        for name in REPOSITORIES:
            scoped[name] = repositories[name].scoped(self.user_id, scoped, acting)
            setattr(self, name, scoped[name])

    def _own(self, user_id: str | None) -> str:
        if user_id is not None and user_id != self.user_id:
            raise NotFound(f"no user with id {user_id}")
        return self.user_id

    def export_user(self, user_id: str | None = None) -> dict[str, Any]:
        """Everything stored about the owner (see :meth:`clonestore.Store.export_user`)."""
        return self.users.export(self._own(user_id))

    def erase_user(self, user_id: str | None = None) -> dict[str, int]:
        """Erase the owner (see :meth:`clonestore.Store.erase_user`)."""
        return self.users.erase(self._own(user_id))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The store's transaction (all-or-nothing; nested blocks are savepoints); with
        row security, begun as the owner's (an engine sending BEGIN at once sends the
        owner with it)."""
        with ExitStack() as stack:
            token = ACTING_USER.set(self.user_id) if self._acting else None
            try:
                stack.enter_context(self._unit.transaction())
            finally:
                if token is not None:
                    ACTING_USER.reset(token)
            yield

    def __repr__(self) -> str:
        return f"<clonestore.UserView user_id={self.user_id}>"
