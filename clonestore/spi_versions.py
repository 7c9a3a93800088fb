"""The storage SPI's version and changelog.

A backend says which version of :mod:`clonestore.spi` it was written against
in an optional class attribute, ``spi_version`` (absent: 1, the SPI of the
first release). When a store opens a backend, :func:`check_spi_version`

* refuses a backend written for a newer SPI than this clonestore provides
  (:class:`~clonestore.ConfigurationError`: upgrade clonestore), and
* warns (``DeprecationWarning``) a backend written for an older SPI once per
  change since then that concerns it, naming the change and what to do. The
  backend keeps working: the SPI only ever adds optional parts, and retires
  old ones behind a warning before they go.

:data:`CHANGES` is the changelog (the backend guide's changelog section
renders the same list); a change to the SPI adds an entry here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Final

import attrs

from clonestore.errors import ConfigurationError

__all__ = ["CHANGES", "RETIRED_CAPABILITIES", "SPI_VERSION", "Change", "check_spi_version"]

#: The version of the storage SPI this clonestore provides.
SPI_VERSION: Final = 2

#: Capabilities the SPI no longer offers to new backends; a backend of an older
#: version may still declare them (it is warned, and they are ignored).
RETIRED_CAPABILITIES: Final = frozenset({"connection_params"})


def _declares(capability: str) -> Callable[[Any], bool]:
    def concerns(backend: Any) -> bool:
        return capability in getattr(backend, "capabilities", ())

    return concerns


@attrs.frozen
class Change:
    """One change of the SPI."""

    #: The SPI version that made it.
    version: int
    #: What changed: a method, a capability, a class or an attribute.
    subject: str
    #: The change and what a backend author does about it.
    what: str
    #: Whether a backend of an older version is concerned (and so warned);
    #: None: additions no older backend needs to know of.
    concerns: Callable[[Any], bool] | None = None


#: Every change since SPI 1, oldest first.
CHANGES: Final[tuple[Change, ...]] = (
    Change(
        2,
        "spi_version",
        "backends declare the SPI version they were written against (class attribute "
        "spi_version = 2; absent means 1); a store refuses a backend newer than itself",
    ),
    Change(
        2,
        "connection_params",
        "the capability connection_params (ConnectionParams) is retired: plugins no longer "
        "open connections of their own but ask the backend for operations and table options; "
        "stop declaring it (an SPI 1 backend declaring it keeps working, the capability "
        "is ignored)",
        concerns=_declares("connection_params"),
    ),
    Change(
        2,
        "nearest",
        "optional method nearest(table, where, column, query, metric, limit, cutoff, "
        "approximate) behind the capability vector_search (clonestore.spi.VectorSearch), "
        "metrics cosine, l2 and ip; without it the core scores vectors itself, as before",
    ),
    Change(
        2,
        "TableSpec options",
        "table specs may carry the options ephemeral and append_only, honoured by backends "
        "declaring the capabilities of the same names; the store checks at open that a "
        "backend declares what its tables and plugins need, and names what is missing",
    ),
    Change(
        2,
        "update_and_insert",
        "optional method update_and_insert(table, where, changes, into, row, copied) behind "
        "the capability update_and_insert (clonestore.spi.UpdateAndInsert): change one row "
        "and insert one taking values from it, in one step; without it the core composes "
        "the same from transaction, update and insert (spi.update_and_insert_reference)",
    ),
    Change(
        2,
        "upsert_returning",
        "optional parameter returning of upsert (the columns to return) behind the "
        "capability upsert_returning (clonestore.spi.UpsertReturning); callers pass it "
        "only to backends declaring the capability",
    ),
    Change(
        2,
        "iter_leaves",
        "clonestore.spi.iter_leaves (every condition of an expression) is public",
    ),
)


def check_spi_version(backend: Any) -> None:
    """Refuse a backend written for a newer SPI; warn one written for an older SPI of
    each change since that concerns it.

    :raises ConfigurationError: ``spi_version`` is not a version this clonestore knows.
    """
    version = getattr(backend, "spi_version", 1)
    name = getattr(backend, "name", type(backend).__name__)
    if type(version) is not int or version < 1:
        raise ConfigurationError(
            f"the {name} backend declares spi_version={version!r}; expected an int from 1 "
            f"to {SPI_VERSION}"
        )
    if version > SPI_VERSION:
        raise ConfigurationError(
            f"the {name} backend is written for storage SPI {version}, but this clonestore "
            f"provides SPI {SPI_VERSION}: upgrade clonestore"
        )
    for change in CHANGES:
        if change.version > version and change.concerns is not None and change.concerns(backend):
            warnings.warn(
                f"the {name} backend is written for storage SPI {version}; SPI "
                f"{change.version} changed {change.subject}: {change.what}",
                DeprecationWarning,
                stacklevel=4,
            )
