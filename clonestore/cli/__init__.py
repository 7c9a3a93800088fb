"""The ``clonestore`` command, built on click.

::

    clonestore migrate            apply pending migrations, one line per migration
    clonestore status             list migrations, applied or pending
    clonestore orphans            list rows pointing at rows that do not exist
    clonestore seed [--users N]   write a realistic demo data set (prints its users)
    clonestore users list         list users (id, email, name, tier)
    clonestore users find EMAIL   find a user by email
    clonestore export USER        everything about a user (id or email), as JSON
    clonestore erase USER         remove everything about a user (asks first)
    clonestore audit verify       check the audit chains (exit 1 when broken)
    clonestore audit head         record and print the audit log's head (SEQ:HASH)
    clonestore cache clean        remove expired cache entries
    clonestore ratelimit cleanup  remove old rate-limit windows
    clonestore dump URL FILE      every table to a file any backend loads (gzip JSON Lines)
    clonestore load FILE URL      load a dump (into an empty database; re-run continues)
    clonestore backup URL FILE    copy a SQLite database online (its backup API)
    clonestore maintain           run every due maintenance task (--every 1h to keep going)
    clonestore row-security enable ROLE   PostgreSQL row-level security for ROLE (disable)
    clonestore doctor             health, migrations, tables, pgvector, replicas
    clonestore shell              a Python REPL with `store` open
    clonestore studio             browse the data in a local web app

Every command takes ``--url`` (default: what ``clonestore.open()`` uses,
``$CLONESTORE_URL``, else ``$DATABASE_URL``, else ``sqlite:///clonestore.db``); those that
open a store with plugins take ``--plugins`` (:func:`~clonestore.cli._common.plugins_option`),
and those that print data take ``--json``. Passwords in URLs are never printed. A failure
is one line on stderr saying what to do next, and exit status 1.

Each group of commands lives in its own module and registers on :data:`cli`
(defined in ``_group``, which the command modules import).
"""

from __future__ import annotations

from collections.abc import Sequence

# The command modules register on ``cli`` as they are imported.
from clonestore.cli import (  # noqa: F401
    data,
    doctor,
    maintain,
    maintenance,
    row_security,
    schema,
    shell,
    studio,
    transfer,
    users,
)
from clonestore.cli._group import cli

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 failure, 2 usage)."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="clonestore")
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0

