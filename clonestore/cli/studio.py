"""``clonestore studio``: browse the store in a local web app."""

from __future__ import annotations

import ipaddress
import os

import click

import clonestore
from clonestore.cli._common import Failure, StoreOptions, plugins_option, url_option
from clonestore.cli._group import cli

#: Where a token may come from instead of the command line (which others can see in ps).
TOKEN_ENV = "CLONESTORE_STUDIO_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_studio_store(options: StoreOptions, allow_edit: bool) -> clonestore.Store:
    """The store a Studio runs on: read-only ones refuse every write (and never
    create tables); with ``allow_edit`` it opens as an application would."""
    if allow_edit:
        return clonestore.open(options.url, plugins=options.plugins)
    from clonestore.studio import ReadOnly

    return clonestore.open(
        options.url, plugins=[*options.plugins, ReadOnly()], create_tables=False
    )


@cli.command(short_help="browse the store in a local web app")
@url_option
@plugins_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on; one other than loopback needs --token")
@click.option("--port", type=click.IntRange(0, 65_535), default=8765, show_default=True)
@click.option("--token", default=None, envvar=TOKEN_ENV,
              help=f"a secret every request must carry (also ${TOKEN_ENV})")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="a host name the Studio also answers to (repeatable); by default only "
                   "the --host address (and the loopback names when that is loopback)")
@click.option("--allow-edit", is_flag=True,
              help="allow edits through the repositories, attributed to the actor 'studio'")
def studio(
    url: str | None,
    plugins: tuple[str, ...],
    host: str,
    port: int,
    token: str | None,
    allow_hosts: tuple[str, ...],
    allow_edit: bool,
) -> None:
    """Serve the Studio: every repository as tables with keyset pages and filters,
    records with their related rows, session timelines, the audit trail with its
    verification, cache and rate-limit statistics, and metrics. Read-only unless
    --allow-edit. Listens on 127.0.0.1 unless --host says otherwise, and then
    only with a --token. Requests whose Host header names another host are refused
    (421), as are forms posted from another origin (403)."""
    if not is_loopback(host) and not token:
        raise Failure(
            f"refusing to listen on {host} without a token: anyone who can reach it "
            "could read the data",
            f"pass --token SECRET (or set ${TOKEN_ENV}), or listen on 127.0.0.1",
        )
    try:
        import uvicorn

        from clonestore.studio import allowed_host_names, create_app
    except ImportError as error:
        raise Failure(
            f"the Studio needs {error.name}", "install it: pip install 'clonestore[studio]'"
        ) from None
    options = StoreOptions(url, plugins)
    click.get_current_context().meta["clonestore.options"] = options
    with open_studio_store(options, allow_edit) as store:
        app = create_app(store, allow_edit=allow_edit, token=token,
                         allowed_hosts=allowed_host_names(host, allow_hosts))
        where = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
        if token:
            click.echo(f"Studio on {where}?token=<the token> for {options.shown_url}", err=True)
        else:
            click.echo(f"Studio on {where} for {options.shown_url}", err=True)
        mode = "edits allowed, as actor 'studio'" if allow_edit else "read-only"
        click.echo(f"{mode}; Ctrl-C to stop", err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning",
                    server_header=False, access_log=bool(os.environ.get("CLONESTORE_STUDIO_LOG")))
