"""What plugins see of each read and write, and the request context it ran in."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from clonestore.query import Expr
from clonestore.schema import TableSpec

__all__ = ["Context", "Operation", "acting_user", "current_context"]


@attrs.frozen(kw_only=True)
class Context:
    """Who is acting, set with ``store.context(...)``; all fields optional."""

    actor_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


_CONTEXT: contextvars.ContextVar[Context] = contextvars.ContextVar(
    "clonestore_context",
    default=Context(),  # noqa: B039 - Context is frozen
)


def current_context() -> Context:
    """The context of the current thread or task."""
    return _CONTEXT.get()


def push_context(context: Context) -> contextvars.Token[Context]:
    return _CONTEXT.set(context)


def pop_context(token: contextvars.Token[Context]) -> None:
    _CONTEXT.reset(token)


#: The user a ``store.for_user`` view is acting for, while its call runs on a backend
#: with capability ``row_security`` (see :mod:`clonestore._row_security`).
ACTING_USER: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "clonestore_acting_user", default=None
)


def acting_user() -> str | None:
    """The user whose ``store.for_user`` view made the current backend call, or None
    (an unscoped call): what a backend with capability ``row_security`` tells the engine."""
    return ACTING_USER.get()


@attrs.frozen(kw_only=True)
class Operation:
    """One read or write passing through the store's gateway.

    ``action`` names it for humans and audit logs (``"user.create"``,
    ``"session.add_turn"``, ``"document.get"``). ``kind`` is the SPI call
    (``insert``, ``insert_many``, ``update``, ``delete``, ``upsert``, ``get``,
    ``select``, ``count``, ``aggregate``).
    """

    action: str
    kind: str
    table: TableSpec
    key: str | None = None
    """The id of the one row concerned, when there is one."""
    where: Expr | None = None
    changes: Mapping[str, Any] = attrs.field(factory=dict)
    """For inserts, the row; for updates, the changed columns."""
    rows: Sequence[Mapping[str, Any]] = ()
    """For bulk inserts, the rows."""
    context: Context = attrs.field(factory=current_context)

    @property
    def is_write(self) -> bool:
        return self.kind in ("insert", "insert_many", "update", "delete", "upsert")
