"""``clonestore seed``, ``export`` and ``erase``: demo data, and a user's data out or gone."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import click

from clonestore._demo import demo_email, seed_demo
from clonestore.cli._common import (
    Failure,
    Progress,
    StoreOptions,
    echo_json,
    find_user,
    json_option,
    on_terminal,
    open_store,
    plugins_option,
    url_option,
)
from clonestore.cli._group import cli
from clonestore.cli.users import user_table
from clonestore.records import User, to_json

#: How many of the users it wrote ``seed`` lists (all of them with --json).
SEED_SHOWN = 10


@cli.command(short_help="write a realistic demo data set")
@url_option
@plugins_option
@click.option("--users", "count", type=click.IntRange(min=1), default=10, show_default=True,
              help="how many demo users to write, each with models, sessions, documents, memories")
@click.option("--seed", "rng_seed", type=int, default=0, show_default=True,
              help="seed of the random generator: the same seed gives the same data")
@click.option("--dimensions", type=click.IntRange(min=1, max=16_384), default=32,
              show_default=True, help="length of the memories' embeddings")
@click.option("--force", is_flag=True,
              help="seed a database that already has users (demo users already there are kept)")
@json_option
def seed(
    url: str | None,
    plugins: tuple[str, ...],
    count: int,
    rng_seed: int,
    dimensions: int,
    force: bool,
    as_json: bool,
) -> None:
    """Write demo users, each with an active voice and face model, documents, ended
    sessions of turns (per-stage latency and cost) and memories with embeddings.

    Creates the schema if it is missing, as clonestore.open() does. Refuses a
    database that already has users unless --force; with --force, demo users
    already present are skipped, so seeding twice adds only what is missing.
    """
    options = StoreOptions(url, plugins)
    with open_store(options, create_tables=True) as store:
        existing = store.users.count()
        if existing and not force:
            raise Failure(
                f"{options.shown_url} already has {existing} user(s); nothing was written",
                "pass --force to add the demo users anyway, or seed an empty database",
            )
        with Progress(count, "seeding users") as bar:
            report = seed_demo(
                store,
                count,
                seed=rng_seed,
                dimensions=dimensions,
                on_user=lambda _: bar.advance(),
            )
        seeded: list[User] = []
        for number in range(count):
            user = store.users.find_by_email(demo_email(number))
            if user is not None:
                seeded.append(user)
    if as_json:
        echo_json({**attrs.asdict(report), "demo_users": seeded})
        return
    written = ", ".join(
        f"{value} {name.replace('_', ' ')}"
        for name, value in attrs.asdict(report).items()
        if name != "skipped"
    )
    skipped = f" ({report.skipped} demo user(s) already there)" if report.skipped else ""
    click.echo(f"{options.shown_url}: wrote {written}{skipped}")
    click.echo(f"demo users ({len(seeded)}):")
    for line in user_table(seeded[:SEED_SHOWN]):
        click.echo(f"  {line}")
    if len(seeded) > SEED_SHOWN:
        click.echo(f"  ... and {len(seeded) - SEED_SHOWN} more: "
                   f"clonestore users list --url {options.shown_url}")
    click.echo(f"next: clonestore export {demo_email(0)} --url {options.shown_url}")


@cli.command("export", short_help="print everything stored about a user, as JSON")
@click.argument("user")
@url_option
@plugins_option
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              default=None, help="write the JSON to this file instead of stdout")
def export(user: str, url: str | None, plugins: tuple[str, ...], output: Path | None) -> None:
    """Print everything stored about USER, given by id or email (deleted rows and the
    sections of the plugins given with --plugins included), as one JSON document: the
    user's right of access. `clonestore users list` shows the users."""
    options = StoreOptions(url, plugins)
    with open_store(options, create_tables=True) as store:
        user_id = find_user(store, options, user).id
        if on_terminal():
            click.echo(f"exporting user {user_id} from {options.shown_url} ...", err=True)
        data = store.export_user(user_id)
    text = json.dumps(to_json(data), indent=2)
    if output is None:
        click.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
    if on_terminal() or output is not None:
        rows = sum(len(v) for v in data.values() if isinstance(v, list))
        where = f" to {output}" if output is not None else ""
        click.echo(f"exported user {user_id}: {rows} owned row(s){where}", err=True)


@cli.command(short_help="remove everything stored about a user")
@click.argument("user")
@url_option
@plugins_option
@click.option("--yes", "-y", is_flag=True, help="erase without asking for confirmation")
@json_option
def erase(
    user: str, url: str | None, plugins: tuple[str, ...], yes: bool, as_json: bool
) -> None:
    """Remove USER (given by id or email) and every row about them, in one transaction
    (the right to be forgotten). Asks for confirmation unless --yes. Give the same
    --plugins the application uses, so their rows about the user go too."""
    options = StoreOptions(url, plugins)
    with open_store(options, create_tables=True) as store:
        found = find_user(store, options, user)
        user_id = found.id
        shown = f"{user_id} ({found.email})"
        if not yes:
            prompt = f"Erase user {shown} and everything stored about them? This cannot be undone"
            try:
                confirmed = click.confirm(prompt, default=False, err=True)
            except click.Abort:
                confirmed = False
            if not confirmed:
                raise Failure(
                    "not confirmed; nothing was erased", "pass --yes to erase without asking"
                )
        removed = store.erase_user(user_id)
    if as_json:
        echo_json({"user_id": user_id, "removed": removed})
        return
    total = sum(removed.values())
    detail = ", ".join(f"{table}: {n}" for table, n in removed.items() if n)
    click.echo(f"erased user {user_id}: {total} row(s) removed ({detail})")
