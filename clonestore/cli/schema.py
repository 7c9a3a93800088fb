"""``clonestore migrate``, ``status``, ``downgrade`` and ``orphans``: set up and inspect
the schema.

The core's migrations and, with ``--plugins``, the plugins' (``audit/0001_initial``).
``status`` changes nothing (on a SQLite file that does not exist it creates
none) and, with ``--check``, exits 1 while migrations are pending. ``orphans`` lists
rows pointing at rows that do not exist (what foreign keys, migration 0008, refuse).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

import clonestore
from clonestore._orphans import find_orphans
from clonestore.cli._common import (
    StoreOptions,
    echo_json,
    json_option,
    layout_option,
    migrate_command,
    missing_sqlite_file,
    open_store,
    plugins_option,
    url_option,
)
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


@cli.command(short_help="apply pending schema migrations")
@url_option
@plugins_option
@layout_option
@click.option("--dry-run", is_flag=True, help="print the SQL each pending migration runs")
@click.option("--to", "target", metavar="NAME", help="stop once migration NAME is applied")
def migrate(
    url: str | None,
    plugins: tuple[str, ...],
    layout: str | None,
    dry_run: bool,
    target: str | None,
) -> None:
    """Apply the pending schema migrations, in order, one transaction each: the core's,
    then those of the --plugins given (e.g. cache,ratelimit,audit). With --layout (or
    the URL's layout=), then give the schema that layout, converting an existing
    database (PostgreSQL; docs/scale-out.md)."""
    options = StoreOptions(url, plugins, layout)
    if dry_run:
        # On a SQLite file that does not exist yet, plan on a fresh one in memory.
        planned_on = _in_memory(options) if missing_sqlite_file(options.url) else options
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


def _status_rows(options: StoreOptions) -> list[dict[str, Any]]:
    if missing_sqlite_file(options.url):
        # A fresh database has every migration pending: ask one in memory.
        with _schema_store(_in_memory(options)) as store:
            return store.migration_status()
    with _schema_store(options) as store:
        return store.migration_status()


@cli.command(short_help="list migrations and whether each is applied")
@url_option
@plugins_option
@layout_option
@click.option("--check", is_flag=True, help="exit with status 1 when migrations are pending")
def status(url: str | None, plugins: tuple[str, ...], layout: str | None, check: bool) -> None:
    """List every known migration (the --plugins' too) and whether it is applied.
    Changes nothing."""
    options = StoreOptions(url, plugins, layout)
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
        if missing_sqlite_file(options.url):
            missing = " (the database file does not exist yet)"
        click.echo(f"{shown}: {pending} pending{missing}; run: {migrate_command(options)}")
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


@cli.command(short_help="list rows that point at rows that do not exist")
@url_option
@json_option
def orphans(url: str | None, as_json: bool) -> None:
    """List, per relation (``turns.session_id`` -> ``sessions``...), the rows pointing at a
    user or session that does not exist: what migration 0008 (foreign keys) refuses to
    run over. Changes nothing; exits with status 1 when there are orphans. Remove them
    (a memory's session_id may be set to NULL instead), then migrate."""
    options = StoreOptions(url)
    with open_store(options, check_tables=False, create_file=False) as store:
        found = find_orphans(store.backend, store.tables)
    total = sum(len(o.rows) for o in found)
    if as_json:
        echo_json(
            [
                {
                    "relation": o.relation,
                    "references": o.references,
                    "on_delete": o.on_delete,
                    "count": len(o.rows),
                    "rows": o.rows,
                }
                for o in found
            ]
        )
    else:
        for o in found:
            if o.rows:
                column = o.columns[0]
                click.echo(f"{o.relation} -> {o.references}: {len(o.rows)} orphan(s)")
                for row in o.rows:
                    click.echo(f"  {o.table} {row['id']}: {column} {row[column]} does not exist")
        shown = options.shown_url
        click.echo(f"{shown}: {total} orphan(s)" if total else f"{shown}: no orphans")
    if total:
        raise click.exceptions.Exit(1)
