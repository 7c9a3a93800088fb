"""``clonestore dump URL FILE``, ``load FILE URL`` and ``backup URL FILE``: move a
database between backends (any engine to any other), or copy it in the engine's own
format (SQLite's online backup).

``dump`` enables the built-in plugins with tables (audit, cache, ratelimit) and leaves
out tables the database does not have; ``load`` enables the plugins the dump was taken
with, creates the schema, and refuses a database holding rows it did not write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, cast

import click

from clonestore.cli._common import (
    Failure,
    Progress,
    StoreOptions,
    echo_json,
    json_option,
    open_store,
    plugins_option,
)
from clonestore.cli._group import cli
from clonestore.errors import DumpError
from clonestore.spi import Backup, capabilities_of

#: The built-in plugins whose tables a dump carries when ``--plugins`` is not given.
TABLE_PLUGINS: Final = ("audit", "cache", "ratelimit")


def _installed(names: tuple[str, ...]) -> tuple[str, ...]:
    from clonestore._entry_points import entry_point_plugins

    available, _ = entry_point_plugins()
    return tuple(name for name in names if name in available)


class _Bar:
    """The progress of a dump or load, as a bar on a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Progress | None = None
        self.done = 0

    def __call__(self, table: str, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = Progress(total, self.label).__enter__()
            self.bar.advance(done)
        else:
            self.bar.advance(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _rows(summary: dict[str, Any]) -> str:
    tables = sum(1 for n in summary["rows"].values() if n)
    return f"{summary['total_rows']} row(s) in {tables} table(s)"


@cli.command(short_help="write every table to a file any backend can load")
@click.argument("url", metavar="URL")
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
@plugins_option
@click.option("--batch-size", type=click.IntRange(min=1), default=2000, show_default=True,
              help="rows read per statement")
@json_option
def dump(url: str, file: str, plugins: tuple[str, ...], batch_size: int, as_json: bool) -> None:
    """Write every table of the database at URL (the core's and the plugins': audit
    chains, cache, rate limits), rows exactly as stored, to FILE: versioned JSON Lines,
    gzip-compressed (FILE ending .zst: zstd; .jsonl: plain). `clonestore load` reads it
    into any backend. Take it while no one writes (tables are read one after another);
    for a live PostgreSQL database use pg_dump."""
    options = StoreOptions(url, plugins or _installed(TABLE_PLUGINS))
    if Path(file).exists():
        raise Failure(f"{file} exists (nothing was written)",
                      "name a new file: a dump never overwrites one")
    bar = _Bar("dumping")
    with open_store(options, check_tables=False, create_file=False) as store:
        try:
            summary = store.dump(file, batch_size=batch_size, progress=bar)
        finally:
            bar.close()
    if as_json:
        echo_json(summary)
        return
    click.echo(
        f"{options.shown_url}: dumped {_rows(summary)} to {file} "
        f"({summary['bytes']} bytes, {summary['seconds']} s)"
    )


@cli.command(short_help="load a dump into a database (empty, or this load's own)")
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
@click.argument("url", metavar="URL")
@plugins_option
@click.option("--batch-size", type=click.IntRange(min=1), default=2000, show_default=True,
              help="rows per transaction")
@click.option("--allow-non-empty", is_flag=True,
              help="add the dump's rows to a database that already holds rows")
@json_option
def load(
    file: str,
    url: str,
    plugins: tuple[str, ...],
    batch_size: int,
    allow_non_empty: bool,
    as_json: bool,
) -> None:
    """Load FILE (from `clonestore dump`) into the database at URL, with the plugins it
    was dumped with, creating the schema first. Refuses a database holding rows it did
    not write unless --allow-non-empty. Each batch is one transaction with its progress
    mark: interrupted, run the same command again and it continues."""
    from clonestore._transfer import read_header

    try:
        header = read_header(file)
    except DumpError as error:
        raise Failure(str(error)) from None
    dumped = tuple(name for name in header.get("plugins") or () if isinstance(name, str))
    wanted = (*plugins, *(name for name in dumped if name not in plugins))
    options = StoreOptions(url, wanted)
    bar = _Bar("loading")
    with open_store(options, create_tables=True) as store:
        try:
            summary = store.load(
                file, batch_size=batch_size, allow_non_empty=allow_non_empty, progress=bar
            )
        finally:
            bar.close()
    if as_json:
        echo_json(summary)
        return
    resumed = (
        f", continuing after {summary['resumed_from']} row(s) loaded before"
        if summary["resumed_from"]
        else ""
    )
    click.echo(
        f"{options.shown_url}: loaded {_rows(summary)} from {file} "
        f"({summary['seconds']} s{resumed})"
    )


@cli.command(short_help="copy the database in the engine's own format (SQLite)")
@click.argument("url", metavar="URL")
@click.argument("file", metavar="FILE", type=click.Path(dir_okay=False))
@json_option
def backup(url: str, file: str, as_json: bool) -> None:
    """Copy the database at URL to the new file FILE, consistently, while it is in use
    (SQLite's online backup API). PostgreSQL: use pg_dump or point-in-time recovery
    (docs/operations.md); any engine: `clonestore dump`."""
    options = StoreOptions(url)
    with open_store(options, check_tables=False, create_file=False) as store:
        backend = store.backend
        if "backup" not in capabilities_of(backend):
            raise Failure(
                f"the {backend.name} backend has no native backup through clonestore",
                "use the engine's own tools (PostgreSQL: pg_dump, or point-in-time "
                f"recovery; see docs/operations.md), or clonestore dump {options.shown_url} "
                f"{file}",
            )
        copy = cast(Backup, backend).backup(file)
    if as_json:
        echo_json({"file": file, "url": copy})
        return
    click.echo(f"{options.shown_url}: backed up to {file} (open it as {copy})")
