"""A plugin that refuses every write: what a read-only Studio opens its store with."""

from __future__ import annotations

from clonestore import hookimpl
from clonestore._operations import Operation
from clonestore._store import Store
from clonestore.errors import ConfigurationError

__all__ = ["ReadOnly"]


class ReadOnly:
    """Refuses every repository write on the store it is registered with, before
    anything is written (``clonestore_before_write``)."""

    @hookimpl(tryfirst=True)
    def clonestore_before_write(self, store: Store, op: Operation) -> None:
        raise ConfigurationError(
            f"the Studio is read-only; {op.action} refused (restart it with --allow-edit)"
        )
