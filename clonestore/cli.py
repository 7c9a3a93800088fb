"""The ``clonestore`` command: set up and inspect a store's schema.

::

    clonestore migrate [--url URL]   apply pending migrations, one line per migration
    clonestore status  [--url URL]   list migrations, applied or pending

``--url`` defaults to what ``clonestore.open()`` uses: ``$CLONESTORE_URL``, else
``sqlite:///clonestore.db``. Passwords in URLs are never printed. A failure is
one line on stderr saying what to do next, and exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit

import clonestore
from clonestore.errors import ClonestoreError, ConfigurationError, StorageUnavailable
from clonestore.secrets import redact, redact_url
from clonestore.store import DEFAULT_URL

__all__ = ["main"]

#: Backends log each migration here (``applying ...`` / ``applied ... in N ms``).
MIGRATIONS_LOGGER = "clonestore.migrations"


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def _default_url() -> str:
    return os.environ.get("CLONESTORE_URL") or DEFAULT_URL


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clonestore",
        description="Set up and inspect a clonestore database.",
    )
    parser.add_argument(
        "--version", action="version", version=f"clonestore {clonestore.__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    url_help = (
        "the store's URL (default: $CLONESTORE_URL, else sqlite:///clonestore.db), "
        "e.g. postgresql://user@host/dbname"
    )
    migrate = commands.add_parser(
        "migrate",
        help="apply pending schema migrations",
        description="Apply the pending schema migrations, in order, one transaction each.",
    )
    migrate.add_argument("--url", default=None, help=url_help)
    status = commands.add_parser(
        "status",
        help="list migrations and whether each is applied",
        description="List every known migration and whether it is applied.",
    )
    status.add_argument("--url", default=None, help=url_help)
    return parser


class _Progress(logging.Handler):
    """Prints the backend's migration log lines as progress."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(logging.INFO)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        print(record.getMessage(), file=self.out, flush=True)


def _open(url: str) -> clonestore.Store:
    # create_tables=False: opening must not change the schema behind the command's back.
    return clonestore.open(url, create_tables=False)


def _migrate(url: str, out: TextIO) -> int:
    logger = logging.getLogger(MIGRATIONS_LOGGER)
    handler = _Progress(out)
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        with _open(url) as store:
            applied = store.migrate()
            total = len(store.migration_status())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    shown = redact_url(url)
    if applied:
        print(f"{shown}: applied {len(applied)} migration(s); schema is up to date", file=out)
    elif total:
        print(f"{shown}: schema is up to date ({total} migration(s) applied)", file=out)
    else:
        print(f"{shown}: this backend has no migrations; nothing to do", file=out)
    return 0


def _status(url: str, out: TextIO) -> int:
    with _open(url) as store:
        rows = store.migration_status()
    shown = redact_url(url)
    if not rows:
        print(f"{shown}: this backend has no migrations", file=out)
        return 0
    pending = 0
    for row in rows:
        if row["applied"]:
            when = row.get("applied_at")
            suffix = f"  (applied {when:%Y-%m-%d %H:%M:%S})" if when is not None else ""
            print(f"[x] {row['name']}{suffix}", file=out)
        else:
            pending += 1
            print(f"[ ] {row['name']}  (pending)", file=out)
    if pending:
        print(f"{shown}: {pending} pending; run: clonestore migrate --url URL", file=out)
    else:
        print(f"{shown}: schema is up to date", file=out)
    return 0


def _advice(error: ClonestoreError) -> str:
    if isinstance(error, StorageUnavailable):
        return "check that the database server is running and the URL is right, then retry"
    if isinstance(error, ConfigurationError):
        return "check the URL and its options (clonestore --help)"
    return "see the message above; the schema was not changed past the last applied migration"


def main(argv: Sequence[str] | None = None, out: Any = None, err: Any = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 failure)."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = _parser().parse_args(argv)
    url = args.url or _default_url()
    try:
        if args.command == "migrate":
            return _migrate(url, out)
        return _status(url, out)
    except ClonestoreError as error:
        shown = redact_url(url)
        message = redact(str(error), _password(url))
        where = "" if shown in message else f" ({shown})"
        print(f"clonestore {args.command}: error: {message}{where}; {_advice(error)}", file=err)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
