"""What every ``clonestore`` command shares: the store options, opening the
store, one-line failures with advice, JSON output, and progress that shows
on a terminal only.

A command declares its options with :func:`url_option` (and
:func:`plugins_option` where plugins matter), opens the store with
:func:`open_store`, and raises :class:`Failure` (or lets a
:class:`~clonestore.ClonestoreError` escape) to fail with one line.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

import click

import clonestore
from clonestore.errors import ClonestoreError, ConfigurationError, StorageUnavailable
from clonestore.opening import DEFAULT_URL
from clonestore.secrets import redact, redact_url

__all__ = [
    "Failure",
    "Progress",
    "StoreOptions",
    "echo_json",
    "fail_with_advice",
    "json_option",
    "on_terminal",
    "open_store",
    "plugins_option",
    "url_option",
    "with_plugins",
]

F = TypeVar("F", bound=Callable[..., Any])

URL_HELP = (
    "the store's URL (default: $CLONESTORE_URL, else sqlite:///clonestore.db), "
    "e.g. postgresql://user@host/dbname"
)


class StoreOptions:
    """The store a command runs against, as the command line gave it."""

    def __init__(self, url: str | None, plugins: Sequence[str] = ()) -> None:
        self.url = url or os.environ.get("CLONESTORE_URL") or DEFAULT_URL
        self.plugins = tuple(plugins)

    @property
    def shown_url(self) -> str:
        """The URL with its password replaced by ``***``."""
        return redact_url(self.url)

    @property
    def password(self) -> str | None:
        try:
            return urlsplit(self.url).password
        except ValueError:
            return None


def _split_plugins(
    ctx: click.Context, param: click.Parameter, value: Sequence[str]
) -> tuple[str, ...]:
    names: list[str] = []
    for item in value:
        names.extend(name.strip() for name in item.split(",") if name.strip())
    return tuple(names)


def url_option(command: F) -> F:
    """``--url URL``: the store to open."""
    return click.option("--url", default=None, metavar="URL", help=URL_HELP)(command)


def plugins_option(command: F) -> F:
    """``--plugins NAME[,NAME...]`` (repeatable): plugins to open the store with."""
    return click.option(
        "--plugins",
        multiple=True,
        callback=_split_plugins,
        metavar="NAMES",
        help="plugins to open the store with, comma-separated (e.g. cache,ratelimit,audit)",
    )(command)


def open_store(
    options: StoreOptions, *, create_tables: bool = False, check_tables: bool = True
) -> clonestore.Store:
    """Open the store the options name.

    ``create_tables=False`` by default: a command must not change the schema
    behind its back; only commands that write data ask for the tables.
    """
    click.get_current_context().meta["clonestore.options"] = options
    return clonestore.open(
        options.url,
        plugins=options.plugins,
        create_tables=create_tables,
        check_tables=check_tables,
    )


class Failure(click.ClickException):
    """A failed command: one line on stderr, ``clonestore CMD: error: ...; what to do``."""

    exit_code = 1

    def __init__(self, message: str, advice: str | None = None) -> None:
        super().__init__(message)
        self.advice = advice
        ctx = click.get_current_context(silent=True)
        self.command_path = ctx.command_path if ctx is not None else "clonestore"

    def show(self, file: IO[Any] | None = None) -> None:
        advice = f"; {self.advice}" if self.advice else ""
        line = f"{self.command_path}: error: {self.message}{advice}"
        if file is None:
            click.echo(line, err=True)
        else:
            click.echo(line, file=file)


def _advice(error: ClonestoreError) -> str:
    if isinstance(error, StorageUnavailable):
        return "check that the database server is running and the URL is right, then retry"
    if isinstance(error, ConfigurationError):
        return "check the URL and its options (clonestore --help)"
    return "see the message above; nothing was changed past the last completed step"


def fail_with_advice(error: ClonestoreError, options: StoreOptions | None) -> Failure:
    """The one-line failure for a clonestore error, its password redacted."""
    message = str(error)
    if options is not None:
        message = redact(message, options.password)
        if options.shown_url not in message:
            message = f"{message} ({options.shown_url})"
    return Failure(message, _advice(error))



def with_plugins(options: StoreOptions, *required: str) -> StoreOptions:
    """The options with ``required`` plugins added (a command that needs one enables it)."""
    missing = [name for name in required if name not in options.plugins]
    return StoreOptions(options.url, (*options.plugins, *missing))


def json_option(command: F) -> F:
    """``--json``: print the command's data as JSON on stdout instead of lines for people."""
    return click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")(
        command
    )


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON (datetimes ISO 8601, Decimals as strings)."""
    from clonestore.records import to_json

    click.echo(json.dumps(to_json(data), indent=2, sort_keys=False, default=str))


def on_terminal() -> bool:
    """Whether stderr is a terminal (progress shows there, and only there)."""
    return sys.stderr.isatty()


class Progress:
    """A progress bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, total: int, label: str) -> None:
        self._bar: Any = None
        if on_terminal():
            self._bar = click.progressbar(
                length=total, label=label, file=sys.stderr
            )

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def advance(self, steps: int = 1) -> None:
        """Move the bar on by ``steps``."""
        if self._bar is not None:
            self._bar.update(steps)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
