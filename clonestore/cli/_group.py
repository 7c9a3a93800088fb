"""The ``clonestore`` click group every command module registers on (private to the CLI)."""

from __future__ import annotations

from typing import Any

import click

import clonestore
from clonestore.cli._common import fail_with_advice
from clonestore.errors import ClonestoreError

__all__ = ["cli"]


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
