"""The query log: each SQL statement with its duration, its parameters redacted.

Statements are logged to the ``clonestore.sql`` logger:

- at DEBUG, every statement, when the store is opened with ``log_queries=True``
  (which also sets that logger to DEBUG and, when logging is not configured,
  gives it a handler on stderr) or while that logger is enabled for DEBUG when
  the store opens;
- at WARNING, statements that took at least ``slow_query_ms`` milliseconds.

Only statements run through the backend's statement path are logged
(migrations log to ``clonestore.migrations``). Parameters are never logged as
values (they hold personal data and secrets): each shows as its type and, for
text and bytes, its length (``str(36)``).
With none of the three set, statements run unwrapped: the log costs nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from ._options import flag

__all__ = ["OPTIONS", "SQL_LOGGER", "describe_params", "logged_execute"]

#: The logger statements go to.
SQL_LOGGER: Final = logging.getLogger("clonestore.sql")

Execute = Callable[[str, Any, int], Any]


def _milliseconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number of milliseconds")
    number = float(value)
    if not 0 <= number < float("inf"):
        raise ValueError("expected a number of milliseconds >= 0")
    return number


#: The backends' query-log options (keyword arguments to open() or URL query).
OPTIONS: Final = {
    "log_queries": (flag, False),
    "slow_query_ms": (_milliseconds, None),
}


def _describe(value: Any) -> str:
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return f"{type(value).__name__}({len(value)})"
    if value is None:
        return "NULL"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[{len(value)}]"
    return type(value).__name__


def describe_params(params: Any) -> str:
    """The statement's parameters as types (and lengths), never their values."""
    if isinstance(params, Sequence) and not isinstance(params, (str, bytes)):
        if params and isinstance(params[0], (tuple, list)):  # executemany: rows of params
            return f"{len(params)} rows of ({', '.join(_describe(p) for p in params[0])})"
        return f"({', '.join(_describe(p) for p in params)})"
    return _describe(params)


def logged_execute(
    execute: Execute, label: str, *, log_queries: bool, slow_query_ms: float | None
) -> Execute | None:
    """``execute`` wrapped to log its statements, or None when nothing would be logged."""
    log_all = log_queries or SQL_LOGGER.isEnabledFor(logging.DEBUG)
    if not log_all and slow_query_ms is None:
        return None
    slow_s = None if slow_query_ms is None else slow_query_ms / 1000.0
    if log_queries:
        # log_queries=True means: show them, as SQLAlchemy's echo=True does (on
        # stderr unless the application configured logging).
        if SQL_LOGGER.getEffectiveLevel() > logging.DEBUG:
            SQL_LOGGER.setLevel(logging.DEBUG)
        if not SQL_LOGGER.hasHandlers():
            SQL_LOGGER.addHandler(logging.StreamHandler())

    def run(sql: str, params: Any, mode: int) -> Any:
        started = time.perf_counter()
        failed = True
        try:
            result = execute(sql, params, mode)
            failed = False
            return result
        finally:
            elapsed = time.perf_counter() - started
            slow = slow_s is not None and elapsed >= slow_s
            if slow or log_all:
                level = logging.WARNING if slow else logging.DEBUG
                SQL_LOGGER.log(
                    level,
                    "%s%s %.3f ms on %s: %s params=%s",
                    "slow query: " if slow else "",
                    "failed" if failed else "ran",
                    elapsed * 1000.0,
                    label,
                    sql,
                    describe_params(params),
                    extra={"sql": sql, "duration_ms": elapsed * 1000.0, "slow": slow},
                )

    return run
