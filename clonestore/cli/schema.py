"""``clonestore migrate``, ``status`` and ``downgrade``: set up and inspect the schema.

The core's migrations and, with ``--plugins``, the plugins' (``audit/0001_initial``).
``status`` changes nothing (on a SQLite file that does not exist it creates
none) and, with ``--check``, exits 1 while migrations are pending.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

import clonestore
from clonestore.cli._common import StoreOptions, open_store, plugins_option, url_option
from clonestore.cli._group import cli

#: Backends log each migration here (``applying ...`` / ``applied ... in N ms``).
MIGRATIONS_LOGGER = "clonestore.migrations"


class _Progress(logging.Handler):
    """Prints the backend's migration log lines as progress."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(record.getMessage())


@contextmanager
def _migration_progress() -> Iterator[None]:
    logger = logging.getLogger(MIGRATIONS_LOGGER)
    handler = _Progress()
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _schema_store(options: StoreOptions) -> clonestore.Store:
    # The plugins' tables may be missing: creating them is what these commands are for.
    return open_store(options, check_tables=False)


def _migrate_command(options: StoreOptions) -> str:
    plugins = f" --plugins {','.join(options.plugins)}" if options.plugins else ""
    return f"clonestore migrate --url {options.shown_url}{plugins}"


@cli.command(short_help="apply pending schema migrations")
@url_option
@plugins_option
@click.option("--dry-run", is_flag=True, help="print the SQL each pending migration runs")
@click.option("--to", "target", metavar="NAME", help="stop once migration NAME is applied")
def migrate(url: str | None, plugins: tuple[str, ...], dry_run: bool, target: str | None) -> None:
    """Apply the pending schema migrations, in order, one transaction each: the core's,
    then those of the --plugins given (e.g. cache,ratelimit,audit)."""
    options = StoreOptions(url, plugins)
    if dry_run:
        # On a SQLite file that does not exist yet, plan on a fresh one in memory.
        planned_on = _in_memory(options) if _missing_sqlite_file(options.url) else options
        with _schema_store(planned_on) as store:
            planned = store.migration_plan(to=target)
        for name, statements in planned:
            click.echo(f"-- {name}")
            for statement in statements:
                click.echo(f"{statement};")
        click.echo(f"-- {options.shown_url}: {len(planned)} migration(s) pending; nothing changed")
        return
    with _migration_progress(), _schema_store(options) as store:
        applied = store.migrate(to=target)
        total = len(store.migration_status())
    shown = options.shown_url
    if applied:
        done = "schema is up to date" if target is None else f"stopped after {target}"
        click.echo(f"{shown}: applied {len(applied)} migration(s); {done}")
    elif total:
        click.echo(f"{shown}: schema is up to date ({total} migration(s) applied)")
    else:
        click.echo(f"{shown}: this backend has no migrations; nothing to do")


def _in_memory(options: StoreOptions) -> StoreOptions:
    """A fresh SQLite database in memory with the same options (still checked) and plugins."""
    query = options.url.partition("?")[2]
    return StoreOptions("sqlite:///:memory:" + (f"?{query}" if query else ""), options.plugins)


def _missing_sqlite_file(url: str) -> bool:
    """Whether ``url`` names a SQLite file that does not exist (opening would create it)."""
    if not url.startswith("sqlite:///"):
        return False
    path = url[len("sqlite:///") :].partition("?")[0]
    return path not in ("", ":memory:") and not Path(path).exists()


def _status_rows(options: StoreOptions) -> list[dict[str, Any]]:
    if _missing_sqlite_file(options.url):
        # A fresh database has every migration pending: ask one in memory.
        with _schema_store(_in_memory(options)) as store:
            return store.migration_status()
    with _schema_store(options) as store:
        return store.migration_status()


@cli.command(short_help="list migrations and whether each is applied")
@url_option
@plugins_option
@click.option("--check", is_flag=True, help="exit with status 1 when migrations are pending")
def status(url: str | None, plugins: tuple[str, ...], check: bool) -> None:
    """List every known migration (the --plugins' too) and whether it is applied.
    Changes nothing."""
    options = StoreOptions(url, plugins)
    rows = _status_rows(options)
    shown = options.shown_url
    if not rows:
        click.echo(f"{shown}: this backend has no migrations")
        return
    pending = 0
    for row in rows:
        if row["applied"]:
            when = row.get("applied_at")
            suffix = f"  (applied {when:%Y-%m-%d %H:%M:%S})" if when is not None else ""
            click.echo(f"[x] {row['name']}{suffix}")
        else:
            pending += 1
            click.echo(f"[ ] {row['name']}  (pending)")
    if pending:
        missing = ""
        if _missing_sqlite_file(options.url):
            missing = " (the database file does not exist yet)"
        click.echo(f"{shown}: {pending} pending{missing}; run: {_migrate_command(options)}")
        if check:
            raise click.exceptions.Exit(1)
    else:
        click.echo(f"{shown}: schema is up to date")


@cli.command(short_help="undo migrations with their down()")
@url_option
@plugins_option
@click.option(
    "--to", "target", metavar="NAME",
    help="undo the migrations applied after NAME (NAME stays); default: the newest core one",
)  # fmt: skip
def downgrade(url: str | None, plugins: tuple[str, ...], target: str | None) -> None:
    """Undo applied migrations with their down(), newest first: those after --to NAME
    (a plugin's as PLUGIN/NAME, with --plugins), else the newest core migration."""
    options = StoreOptions(url, plugins)
    with _migration_progress(), _schema_store(options) as store:
        reverted = store.downgrade(to=target)
    shown = options.shown_url
    if reverted:
        click.echo(f"{shown}: reverted {len(reverted)} migration(s): {', '.join(reverted)}")
    else:
        click.echo(f"{shown}: nothing to revert")
