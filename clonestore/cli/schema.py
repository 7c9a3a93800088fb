"""``clonestore migrate`` and ``clonestore status``: set up and inspect the schema."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import click

from clonestore.cli._common import StoreOptions, open_store, url_option
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


@cli.command(short_help="apply pending schema migrations")
@url_option
def migrate(url: str | None) -> None:
    """Apply the pending schema migrations, in order, one transaction each."""
    options = StoreOptions(url)
    with _migration_progress(), open_store(options) as store:
        applied = store.migrate()
        total = len(store.migration_status())
    shown = options.shown_url
    if applied:
        click.echo(f"{shown}: applied {len(applied)} migration(s); schema is up to date")
    elif total:
        click.echo(f"{shown}: schema is up to date ({total} migration(s) applied)")
    else:
        click.echo(f"{shown}: this backend has no migrations; nothing to do")


@cli.command(short_help="list migrations and whether each is applied")
@url_option
def status(url: str | None) -> None:
    """List every known migration and whether it is applied."""
    options = StoreOptions(url)
    with open_store(options) as store:
        rows = store.migration_status()
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
        click.echo(f"{shown}: {pending} pending; run: clonestore migrate --url URL")
    else:
        click.echo(f"{shown}: schema is up to date")
