"""The clonestore error hierarchy.

Every failure a user can see is one of these classes, on every backend::

    ClonestoreError
     +-- ValidationError (ValueError)      bad input, refused before anything is written
     +-- NotFound (KeyError)               no such (live) row
     +-- AlreadyExists                     a unique value is taken among live rows
     +-- Conflict                          stale ``expected_version`` or a lost race
     +-- ForeignKeyViolation               a row would point at no row (an orphan)
     +-- InvalidTransition                 a state machine refused a move
     +-- RateLimited                       a rate-limit policy refused the call
     +-- ConfigurationError (ValueError)   unknown URL scheme, plugin or option; a refused
     |    |                                login or a missing database (not retryable)
     |    +-- MigrationsPending            a write refused: the database's core migrations
     |                                     are not all applied (``clonestore migrate``)
     +-- StorageUnavailable (ConnectionError)  the storage cannot be reached; retryable
     +-- BackendError                      any other storage failure; keeps ``.orig``
 +-- DumpError                         a dump or load refused: a damaged, truncated or
                                       newer file, a schema that does not fit, a target
                                       that is not empty (``.reason`` says which)

Backends translate driver exceptions at their boundary, so no driver exception
reaches a caller; the original is kept as ``.orig`` (and as ``__cause__``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AlreadyExists",
    "BackendError",
    "ClonestoreError",
    "ConfigurationError",
    "Conflict",
    "DumpError",
    "ForeignKeyViolation",
    "InvalidTransition",
    "MigrationsPending",
    "NotFound",
    "RateLimited",
    "StorageUnavailable",
    "ValidationError",
]


class ClonestoreError(Exception):
    """Base class of every error clonestore raises."""

    def __init__(self, message: str = "", *, orig: BaseException | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.orig = orig

    def __str__(self) -> str:
        return self.message


class ValidationError(ClonestoreError, ValueError):
    """Input was refused before anything was written.

    ``field`` names the offending field when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class NotFound(ClonestoreError, KeyError):
    """The requested row does not exist (or is soft-deleted, or is not yours)."""

    __str__ = ClonestoreError.__str__


class AlreadyExists(ClonestoreError):
    """A unique value is already used by a live row.

    ``columns`` names the violated constraint's columns, in its order: ``("id",)`` for a
    taken id; from a backend, the table's columns (``("email_key",)``); from a
    repository, the fields the caller gave (``("email",)``). Each backend's error
    translation fills it (from the engine's report of the constraint, never from a
    message); empty only when the engine did not say.
    """

    def __init__(
        self,
        message: str = "",
        *,
        columns: Sequence[str] = (),
        orig: BaseException | None = None,
    ) -> None:
        super().__init__(message, orig=orig)
        self.columns: tuple[str, ...] = tuple(columns)


class Conflict(ClonestoreError):
    """The row changed since it was read (stale ``expected_version``) or a race was lost."""


class ForeignKeyViolation(ClonestoreError):
    """The storage refused a write that would leave a row pointing at no row: an insert
    or update naming a missing user or session, or the removal of a row others still
    point at (see :class:`clonestore.schema.ForeignKey`); nothing was written. The
    repositories check references first, so through them this is a lost race (a user
    erased while a row of theirs was being created); trying again then gives the
    repository's own answer (:class:`NotFound`). Not a :class:`Conflict`: the
    transaction was not rolled back, and the same write fails the same way again."""


class InvalidTransition(ClonestoreError):
    """A state machine refused the requested move."""


class RateLimited(ClonestoreError):
    """A rate-limit policy refused the call; ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigurationError(ClonestoreError, ValueError):
    """The store was opened with an unknown scheme, plugin or option, or the server
    refused the URL's login or lacks its database: the message says what to fix."""


class MigrationsPending(ConfigurationError):
    """A write was refused, before anything was written, because the database has core
    migrations pending (a store opened with ``create_tables=False`` on a database an
    older version made). Some migrations convert what is stored in place (0009 turns
    float64 vector blobs into float32) and cannot tell rows the current version wrote
    from the rows they convert, so nothing may be written until they have run: the
    message names the command (``clonestore migrate --url ...``). ``pending`` lists
    the migrations' names. Reads work meanwhile.
    """

    def __init__(self, message: str = "", *, pending: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.pending: tuple[str, ...] = tuple(pending)


class StorageUnavailable(ClonestoreError, ConnectionError):
    """The storage could not be reached (connection lost, pool exhausted, timeout).

    Retryable: later calls on the same store may succeed without reopening it.
    """


class BackendError(ClonestoreError):
    """Any other storage failure. ``orig`` keeps the driver's exception."""


class DumpError(ClonestoreError):
    """``store.dump()`` or ``store.load()`` (``clonestore dump``/``load``) refused, before
    writing anything it should not: the message says what was wrong and what to do.

    ``reason`` says which: ``"corrupt"`` or ``"truncated"`` (the file is damaged: take the
    dump again), ``"version"`` (a newer format: upgrade clonestore), ``"schema"`` (the
    dump's tables or columns do not fit the store: its plugins or migrations),
    ``"not_empty"`` (the target holds rows the load did not write), ``"interrupted"``
    (a batch failed; ``orig`` is the error; run the same load again to continue),
    ``"missing"``, ``"compression"``, ``"usage"``.
    """

    def __init__(self, message: str, *, reason: str, orig: BaseException | None = None) -> None:
        super().__init__(message, orig=orig)
        self.reason = reason
