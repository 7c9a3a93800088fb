"""Row-level security in the engine: the backend a user's view calls (capability
``row_security``).

The core limits a ``store.for_user(id)`` view to the user's rows on every backend
(:mod:`clonestore._tenancy`). A backend declaring ``row_security`` can hold the engine
to it too: the view's repositories then call it through an :class:`ActingBackend`,
which runs every call with :func:`clonestore.spi.acting_user` set to the view's user,
so the backend can tell the engine whom the statements are for (PostgreSQL: the
setting its policies read, sent with the statement). The contract is the
:class:`~clonestore.spi.RowSecurity` protocol's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from clonestore._operations import ACTING_USER
from clonestore.spi import CAPABILITY_PROTOCOLS, Backend

__all__ = ["ActingBackend"]


class ActingBackend:
    """``backend`` as one user's view calls it: each call (and each transaction) runs
    with :func:`~clonestore.spi.acting_user` returning ``user_id``.

    Every method of :class:`~clonestore.spi.Backend` is wrapped, and each method of a
    capability protocol the backend implements (looked up on it, so that this view
    implements the same protocols: :func:`~clonestore.spi.capabilities_of`); other
    attributes are the backend's own.
    """

    def __init__(self, backend: Backend, user_id: str) -> None:
        self.backend = backend
        self.user_id = user_id
        self.name = backend.name
        self.capabilities = backend.capabilities

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.backend, name)
        if name in _CAPABILITY_CALLS and callable(attr):
            return _acting(name).__get__(self)
        return attr

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The backend's transaction, begun and ended as the view's user."""
        token = ACTING_USER.set(self.user_id)
        try:
            with self.backend.transaction():
                yield
        finally:
            ACTING_USER.reset(token)

    def __repr__(self) -> str:
        return f"<ActingBackend user_id={self.user_id} {self.backend!r}>"


def _acting(name: str) -> Callable[..., Any]:
    def call(self: ActingBackend, *args: Any, **kwargs: Any) -> Any:
        token = ACTING_USER.set(self.user_id)
        try:
            return getattr(self.backend, name)(*args, **kwargs)
        finally:
            ACTING_USER.reset(token)

    call.__name__ = name
    call.__doc__ = f"The backend's ``{name}``, as the view's user."
    return call


def _calls(*protocols: type) -> list[str]:
    names: set[str] = set()
    for protocol in protocols:
        names.update(
            name for name, value in vars(protocol).items()
            if not name.startswith("_") and callable(value)
        )  # fmt: skip
    names.discard("transaction")
    return sorted(names)


#: The capability protocols' methods, wrapped when the backend has them.
_CAPABILITY_CALLS = frozenset(_calls(*CAPABILITY_PROTOCOLS.values())) - set(_calls(Backend))

for _name in _calls(Backend):
    setattr(ActingBackend, _name, _acting(_name))
