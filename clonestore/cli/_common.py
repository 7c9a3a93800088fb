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
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

import click

import clonestore
from clonestore._opening import default_url
from clonestore.errors import (
    ClonestoreError,
    ConfigurationError,
    StorageUnavailable,
    ValidationError,
)
from clonestore.records import User
from clonestore.secrets import redact, redact_url

__all__ = [
    "Failure",
    "Progress",
    "StoreOptions",
    "echo_json",
    "fail_with_advice",
    "find_user",
    "json_option",
    "layout_option",
    "migrate_command",
    "missing_sqlite_file",
    "on_terminal",
    "open_store",
    "plugins_option",
    "url_option",
    "with_layout",
    "with_plugins",
]

F = TypeVar("F", bound=Callable[..., Any])

URL_HELP = (
    "the store's URL (default: $CLONESTORE_URL, else $DATABASE_URL, else "
    "sqlite:///clonestore.db), "
    "e.g. postgresql://user@host/dbname"
)


#: The PostgreSQL schema layouts ``--layout`` offers (the URL option ``layout=``).
LAYOUTS = ("plain", "citus", "partitioned")


def with_layout(url: str, layout: str | None) -> str:
    """``url`` with the ``layout=`` option ``--layout`` gave (None: as it is); a
    :class:`Failure` on a URL that is not PostgreSQL's or names another layout."""
    if layout is None:
        return url
    scheme = url.partition(":")[0]
    if scheme not in ("postgresql", "postgres"):
        raise Failure(
            f"--layout is an option of postgresql:// stores, not of {scheme}://",
            "drop --layout, or name a postgresql:// URL",
        )
    query = url.partition("?")[2]
    given = [p.partition("=")[2] for p in query.split("&") if p.startswith("layout=")]
    if given and given != [layout]:
        raise Failure(
            f"--layout {layout} contradicts the URL's layout={given[0]}",
            "give the layout once, as --layout or in the URL",
        )
    if given:
        return url
    return f"{url}{'&' if query else '?'}layout={layout}"


def layout_option(command: F) -> F:
    """``--layout plain|citus|partitioned``: the PostgreSQL schema layout, the URL's
    ``layout=`` option (docs/scale-out.md)."""
    return click.option(
        "--layout",
        type=click.Choice(LAYOUTS),
        default=None,
        help="the PostgreSQL schema layout, as the URL option layout= (default: the URL's, "
        "else plain): citus (distributable keys) or partitioned (turns and the audit log "
        "partitioned by month); see docs/scale-out.md",
    )(command)


class StoreOptions:
    """The store a command runs against, as the command line gave it."""

    def __init__(
        self, url: str | None, plugins: Sequence[str] = (), layout: str | None = None
    ) -> None:
        self.url = with_layout(url or default_url(), layout)
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
    options: StoreOptions,
    *,
    create_tables: bool = False,
    check_tables: bool = True,
    create_file: bool = True,
) -> clonestore.Store:
    """Open the store the options name.

    ``create_tables=False`` by default: a command must not change the schema
    behind its back; only commands that write data ask for the tables. With
    ``create_file=False`` a SQLite file that does not exist is a :class:`Failure`
    (opening it would create it).
    """
    click.get_current_context().meta["clonestore.options"] = options
    if not create_file and missing_sqlite_file(options.url):
        # The plugins are checked first (on a database in memory): the command to
        # create the file must be one that works.
        clonestore.open("sqlite:///:memory:", plugins=options.plugins, create_tables=False,
                        check_tables=False).close()
        directory = Path(options.url[len("sqlite:///") :].partition("?")[0]).absolute().parent
        if not directory.is_dir():
            raise Failure(
                f"{options.shown_url}: the directory {directory} does not exist "
                "(nothing was created)",
                f"create it (mkdir -p {directory}), then: {migrate_command(options)}",
            )
        raise Failure(
            f"{options.shown_url}: the database file does not exist (nothing was created)",
            f"create it with its schema: {migrate_command(options)}",
        )
    return clonestore.open(
        options.url,
        plugins=options.plugins,
        create_tables=create_tables,
        check_tables=check_tables,
    )


def missing_sqlite_file(url: str) -> bool:
    """Whether ``url`` names a SQLite file that does not exist (opening would create it)."""
    if not url.startswith("sqlite:///"):
        return False
    path = url[len("sqlite:///") :].partition("?")[0]
    return path not in ("", ":memory:") and not Path(path).exists()


def migrate_command(options: StoreOptions) -> str:
    """The ``clonestore migrate`` command for these options, ready to run."""
    plugins = f" --plugins {','.join(options.plugins)}" if options.plugins else ""
    return f"clonestore migrate --url {options.shown_url}{plugins}"


def find_user(store: clonestore.Store, options: StoreOptions, who: str) -> User:
    """The user ``who`` names: an email (any case; a live user first, else a deleted
    one) or an id (deleted users included). A :class:`Failure` saying how to find
    users when there is none."""
    find = f"clonestore users list --url {options.shown_url}"
    if "@" in who:
        user = store.users.find_by_email(who)
        if user is None:
            deleted = store.users.find_many(where={"email": who}, with_deleted=True, limit=1)
            user = deleted[0] if deleted else None
        if user is None:
            raise Failure(f"no user with email {who} in {options.shown_url}",
                          f"list the users: {find}")
        return user
    try:
        found = store.users.find_many(where={"id": who}, with_deleted=True, limit=1)
    except ValidationError as error:
        raise Failure(f"{who!r} is neither a user id nor an email ({error})",
                      f"give a user's id or email; list them: {find}") from None
    if not found:
        raise Failure(f"no user with id {who} in {options.shown_url}",
                      f"list the users: {find}")
    return found[0]


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


#: Phrases of errors that already say what to do (the CLI then adds no advice).
_SAYS_WHAT_TO_DO = ("pip install ", "clonestore migrate", "create it first", "permissions",
                    "writable")


def _advice(error: ClonestoreError, options: StoreOptions | None) -> str | None:
    if any(phrase in str(error) for phrase in _SAYS_WHAT_TO_DO):
        return None
    if isinstance(error, StorageUnavailable):
        if options is not None and options.url.startswith("sqlite:"):
            return "check the database file's path, and that no other process holds it locked"
        return "check that the database server is running and the URL is right, then retry"
    if isinstance(error, ConfigurationError):
        ctx = click.get_current_context(silent=True)
        command = ctx.command_path if ctx is not None else "clonestore"
        return f"check --url and --plugins ({command} --help)"
    return None  # the error says what was wrong


def fail_with_advice(error: ClonestoreError, options: StoreOptions | None) -> Failure:
    """The one-line failure for a clonestore error, its password redacted."""
    message = str(error)
    if options is not None:
        message = redact(message, options.password)
        if options.shown_url not in message:
            message = f"{options.shown_url}: {message}"
    return Failure(message, _advice(error, options))


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
