"""``clonestore shell``: a Python REPL with the store open."""

from __future__ import annotations

import code

import click

import clonestore
from clonestore.cli._common import StoreOptions, open_store, plugins_option, url_option
from clonestore.cli._group import cli


@cli.command(short_help="a Python REPL with `store` open")
@url_option
@plugins_option
def shell(url: str | None, plugins: tuple[str, ...]) -> None:
    """Start an interactive Python session with ``store`` (the open store) and
    ``clonestore`` in scope. The store is closed when the session ends."""
    options = StoreOptions(url, plugins)
    with open_store(options, create_tables=True) as store:
        banner = (
            f"clonestore {clonestore.__version__} shell: `store` is {store!r}\n"
            "e.g. store.users.count(), store.users.page(size=5).items; Ctrl-D to leave"
        )
        scope = {"store": store, "clonestore": clonestore}
        code.interact(banner=banner, local=scope, exitmsg="")
    click.echo("store closed", err=True)
