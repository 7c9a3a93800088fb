"""``clonestore users list`` and ``users find EMAIL``: find a user before acting on them
(``export`` and ``erase`` take the id or the email these print)."""

from __future__ import annotations

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
from clonestore.records import User

#: The columns ``users list`` prints, in order.
COLUMNS = ("id", "email", "name", "subscription_tier", "created_at")


def user_table(users: list[User]) -> list[str]:
    """The users as lines of a table with a header, columns aligned."""
    rows = [[c.replace("subscription_", "") for c in COLUMNS]]
    for user in users:
        created = f"{user.created_at:%Y-%m-%d %H:%M:%S}"
        rows.append([user.id, user.email, user.name or "", user.subscription_tier, created])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


@cli.group(short_help="list users, or find one by email")
def users() -> None:
    """List users, or find one by email, before acting on them (export, erase)."""


@users.command("list", short_help="list users, oldest first")
@url_option
@plugins_option
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="list at most this many")
@click.option("--with-deleted", is_flag=True, help="list soft-deleted users too")
@json_option
def list_users(
    url: str | None, plugins: tuple[str, ...], limit: int, with_deleted: bool, as_json: bool
) -> None:
    """List users, oldest first: id, email, name, tier and when each was created (with
    --json, every field). Changes nothing."""
    options = StoreOptions(url, plugins)
    with open_store(options, create_file=False) as store:
        found = store.users.find_many(order_by=["created_at", "id"], limit=limit,
                                      with_deleted=with_deleted)
        total = store.users.count(with_deleted=with_deleted)
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo(f"{options.shown_url}: no users")
        return
    for line in user_table(found):
        click.echo(line)
    more = f" (the first {len(found)}; --limit N for more)" if total > len(found) else ""
    click.echo(f"{options.shown_url}: {total} user(s){more}")


@users.command("find", short_help="find a user by email")
@click.argument("email")
@url_option
@plugins_option
@json_option
def find(email: str, url: str | None, plugins: tuple[str, ...], as_json: bool) -> None:
    """Find the live user with EMAIL (any case) and print their fields; exit status 1
    when there is none. Changes nothing."""
    options = StoreOptions(url, plugins)
    with open_store(options, create_file=False) as store:
        user = store.users.find_by_email(email)
    if user is None:
        raise Failure(f"no user with email {email} in {options.shown_url}",
                      f"list the users: clonestore users list --url {options.shown_url}")
    if as_json:
        echo_json(user)
        return
    for line in user_table([user]):
        click.echo(line)
