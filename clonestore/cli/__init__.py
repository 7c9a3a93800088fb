"""The ``clonestore`` command, built on click.

::

    clonestore migrate            apply pending migrations, one line per migration
    clonestore status             list migrations, applied or pending
    clonestore seed [--users N]   write a realistic demo data set
    clonestore export USER_ID     everything about a user, as JSON
    clonestore erase USER_ID      remove everything about a user (asks first)
    clonestore audit verify       check the audit chain (exit 1 when broken)
    clonestore cache clean        remove expired cache entries
    clonestore ratelimit cleanup  remove old rate-limit windows
    clonestore doctor             health, migrations, tables, pgvector, replicas
    clonestore shell              a Python REPL with `store` open
    clonestore studio             browse the data in a local web app

Every command takes ``--url`` (default: what ``clonestore.open()`` uses,
``$CLONESTORE_URL``, else ``sqlite:///clonestore.db``) and ``--plugins``; those
that print data take ``--json``. Passwords in URLs are never printed. A failure
is one line on stderr saying what to do next, and exit status 1.

Each group of commands lives in its own module and registers on :data:`cli`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

import clonestore
from clonestore.cli._common import fail_with_advice
from clonestore.errors import ClonestoreError

__all__ = ["cli", "main"]


class _Command(click.Command):
    """A command whose failures are one line and whose usage reads ``usage: ...``."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        pieces = self.collect_usage_pieces(ctx)
        formatter.write_usage(ctx.command_path, " ".join(pieces), prefix="usage: ")

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClonestoreError as error:
            raise fail_with_advice(error, ctx.meta.get("clonestore.options")) from None


class _Group(_Command, click.Group):
    """A group of :class:`_Command` (and of groups like itself)."""

    command_class = _Command
    group_class = type


@click.group("clonestore", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(clonestore.__version__, prog_name="clonestore")
def cli() -> None:
    """Set up, inspect and maintain a clonestore database."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 failure, 2 usage)."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="clonestore")
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


# Registering the commands (imported for their side effect on ``cli``).
from clonestore.cli import data, doctor, maintenance, schema, shell, studio  # noqa: E402, F401
