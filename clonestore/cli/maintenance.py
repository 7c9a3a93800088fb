"""``clonestore audit verify`` and ``head``, ``cache clean`` and ``ratelimit cleanup``:
plugin upkeep.

Each command enables the plugin it works on; ``--plugins`` adds others.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
import click

from clonestore.cli._common import (
    Failure,
    StoreOptions,
    echo_json,
    json_option,
    open_store,
    plugins_option,
    url_option,
    with_plugins,
)
from clonestore.cli._group import cli


@cli.group(short_help="the audit trail")
def audit() -> None:
    """Inspect the audit plugin's tamper-evident trail."""


def _head_value(text: str | None) -> tuple[int, str] | None:
    """``SEQ:HASH`` (what ``audit head`` printed) as ``(seq, hash)``."""
    if text is None:
        return None
    seq, sep, digest = text.partition(":")
    if not sep or not seq.isdigit() or len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise click.BadParameter("expected SEQ:HASH, as `clonestore audit head` prints it")
    return int(seq), digest


@audit.command(short_help="check the audit chains; exit 1 if one is broken")
@url_option
@plugins_option
@click.option("--owner", default=None, metavar="OWNER",
              help="check only this owner's chain (a user id, or ~system)")
@click.option("--expect-head", "expect_head", default=None, metavar="SEQ:HASH",
              help="also fail when the log no longer reaches this head (from `audit head`)")
@json_option
def verify(
    url: str | None,
    plugins: tuple[str, ...],
    owner: str | None,
    expect_head: str | None,
    as_json: bool,
) -> None:
    """Walk the audit chains (one per owner) and check every row's hash link; exits
    with status 1 when a row was changed, removed, reordered or redacted without an
    erasure, when a table is missing, or (``--expect-head``) when the log no longer
    reaches a head recorded earlier. Creates no table."""
    head = _head_value(expect_head)
    options = with_plugins(StoreOptions(url, plugins), "audit")
    with open_store(options, check_tables=False) as store:
        report = store.audit.verify(owner, expect_head=head)
    if as_json:
        echo_json(attrs.asdict(report))
    elif report.ok:
        chains = "1 chain" if report.chains == 1 else f"{report.chains} chains"
        click.echo(
            f"{options.shown_url}: audit chain ok ({report.checked} row(s) checked, {chains})"
        )
    if not report.ok:
        where = f"seq {report.first_bad_seq}" if report.first_bad_seq is not None else "the end"
        if report.first_bad_id is not None:
            where += f" (id {report.first_bad_id})"
        raise Failure(
            f"audit chain broken at {where}: {report.reason}",
            "rows from there on cannot be trusted; restore the audit tables from a backup "
            "and investigate who changed them",
        )


@audit.command(short_help="record and print the audit log's head (SEQ:HASH)")
@url_option
@plugins_option
@click.option("--owner", default=None, metavar="OWNER",
              help="print this owner's chain head instead (records nothing)")
@json_option
def head(url: str | None, plugins: tuple[str, ...], owner: str | None, as_json: bool) -> None:
    """Record a global anchor (an entry naming every chain's head that moved since
    the last one) and print it as SEQ:HASH. Keep it outside the database (a ticket,
    another system): `clonestore audit verify --expect-head SEQ:HASH` later fails if
    the log was cut or rewritten before it. Run it periodically (cron)."""
    options = with_plugins(StoreOptions(url, plugins), "audit")
    with open_store(options) as store:
        seq, digest = store.audit.head(owner)
    if as_json:
        echo_json({"seq": seq, "hash": digest, "owner": owner})
    else:
        click.echo(f"{seq}:{digest}")


@cli.group(short_help="the cache")
def cache() -> None:
    """Upkeep of the cache plugin's tables."""


@cache.command(short_help="remove expired cache entries")
@url_option
@plugins_option
@json_option
def clean(url: str | None, plugins: tuple[str, ...], as_json: bool) -> None:
    """Remove expired entries from every cache table."""
    options = with_plugins(StoreOptions(url, plugins), "cache")
    with open_store(options, create_tables=True) as store:
        removed: dict[str, int] = store.cache.clean_expired()
    if as_json:
        echo_json({"removed": removed})
        return
    detail = ", ".join(f"{name}: {n}" for name, n in removed.items())
    click.echo(
        f"{options.shown_url}: removed {sum(removed.values())} expired entries ({detail})"
    )


@cli.group(short_help="the rate limiter")
def ratelimit() -> None:
    """Upkeep of the rate-limit plugin's counters."""


@ratelimit.command(short_help="remove old rate-limit windows")
@url_option
@plugins_option
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), default=86_400.0,
              show_default=True, metavar="SECONDS",
              help="remove windows that ended at least this many seconds ago")
@json_option
def cleanup(url: str | None, plugins: tuple[str, ...], older_than: float, as_json: bool) -> None:
    """Remove rate-limit windows that ended long ago (they no longer limit anyone)."""
    options = with_plugins(StoreOptions(url, plugins), "ratelimit")
    with open_store(options, create_tables=True) as store:
        removed: int = store.ratelimit.cleanup(older_than=timedelta(seconds=older_than))
    if as_json:
        echo_json({"removed": removed})
        return
    click.echo(f"{options.shown_url}: removed {removed} old rate-limit window(s)")
