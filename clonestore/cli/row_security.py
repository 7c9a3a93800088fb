"""``clonestore row-security enable ROLE`` and ``disable``: PostgreSQL's row-level
security for the application role (capability ``row_security``).

Run as the tables' owner (the role that migrates). ``enable`` installs a policy on every
table with an owner column, turns row-level security on and grants ROLE the use of the
store's tables (the core's and the ``--plugins``'); the application then opens its store
as ROLE with ``row_security=on``. Both are idempotent and print the statements they ran.
"""

from __future__ import annotations

from typing import cast

import click

from clonestore.cli._common import (
    Failure,
    StoreOptions,
    echo_json,
    json_option,
    open_store,
    plugins_option,
    url_option,
)
from clonestore.cli._group import cli
from clonestore.spi import RowSecurity, capabilities_of


@cli.group("row-security", short_help="PostgreSQL row-level security for the application role")
def row_security() -> None:
    """Turn PostgreSQL's row-level security on or off (as the tables' owner)."""


def _run(options: StoreOptions, role: str | None, as_json: bool) -> None:
    with open_store(options, check_tables=False, create_file=False) as store:
        if "row_security" not in capabilities_of(store.backend):
            raise Failure(
                f"{options.shown_url}: row-level security is a PostgreSQL capability "
                f"(plain layout); the {store.backend.name} backend does not offer it"
            )
        backend = cast(RowSecurity, store.backend)
        tables = list(store.tables.values())
        if role is None:
            statements = backend.disable_row_security(tables)
        else:
            statements = backend.enable_row_security(tables, role)
    if as_json:
        echo_json({"url": options.shown_url, "role": role, "statements": statements})
        return
    for statement in statements:
        click.echo(statement)
    state = f"on for role {role}" if role is not None else "off"
    click.echo(f"{options.shown_url}: row-level security {state}")


@row_security.command(short_help="install the policies and grant ROLE the tables")
@click.argument("role")
@url_option
@plugins_option
@json_option
def enable(role: str, url: str | None, plugins: tuple[str, ...], as_json: bool) -> None:
    """Install the policy on every table with an owner column (users.id, every
    user_id), turn row-level security on, and grant ROLE (a role that is not the owner,
    a superuser or BYPASSRLS) the right to read and write the store's tables, the
    --plugins' too. The application then opens its store as ROLE with
    ``?row_security=on``; each ``for_user`` view's statements see only its user's rows."""
    _run(StoreOptions(url, plugins), role, as_json)


@row_security.command(short_help="turn the policies off and drop them")
@url_option
@plugins_option
@json_option
def disable(url: str | None, plugins: tuple[str, ...], as_json: bool) -> None:
    """Turn row-level security off on the owned tables and drop the policies (the grants
    stay: revoke them yourself)."""
    _run(StoreOptions(url, plugins), None, as_json)
