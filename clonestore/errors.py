"""The clonestore error hierarchy.

Every failure a user can see is one of these classes, on every backend::

    ClonestoreError
     +-- ValidationError (ValueError)      bad input, refused before anything is written
     +-- NotFound (KeyError)               no such (live) row
     +-- AlreadyExists                     a unique value is taken among live rows
     +-- Conflict                          stale ``expected_version`` or a lost race
     +-- InvalidTransition                 a state machine refused a move
     +-- RateLimited                       a rate-limit policy refused the call
     +-- ConfigurationError (ValueError)   unknown URL scheme, plugin or option; a refused
     |                                     login or a missing database (not retryable)
     +-- StorageUnavailable (ConnectionError)  the storage cannot be reached; retryable
     +-- BackendError                      any other storage failure; keeps ``.orig``

Backends translate driver exceptions at their boundary, so no driver exception
reaches a caller; the original is kept as ``.orig`` (and as ``__cause__``).
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "BackendError",
    "ClonestoreError",
    "ConfigurationError",
    "Conflict",
    "InvalidTransition",
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
    """A unique value is already used by a live row."""


class Conflict(ClonestoreError):
    """The row changed since it was read (stale ``expected_version``) or a race was lost."""


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


class StorageUnavailable(ClonestoreError, ConnectionError):
    """The storage could not be reached (connection lost, pool exhausted, timeout).

    Retryable: later calls on the same store may succeed without reopening it.
    """


class BackendError(ClonestoreError):
    """Any other storage failure. ``orig`` keeps the driver's exception."""
