"""``clonestore doctor``: is this store healthy and ready for the application?"""

from __future__ import annotations

import time
from typing import Any

import attrs
import click

from clonestore._store import Store
from clonestore.cli._common import (
    Failure,
    StoreOptions,
    echo_json,
    json_option,
    migrate_command,
    open_store,
    plugins_option,
    url_option,
)
from clonestore.cli._group import cli
from clonestore.errors import ClonestoreError
from clonestore.query import TRUE
from clonestore.secrets import redact_url
from clonestore.spi import capabilities_of


@attrs.frozen
class Check:
    """One line of the doctor's report: ``status`` is ``ok``, ``warn``, ``fail`` or ``info``."""

    name: str
    status: str
    detail: str
    fix: str | None = None


def _connection(health: dict[str, Any]) -> Check:
    latency = health.get("latency_ms")
    parts = [str(health.get("backend", "?"))]
    if health.get("server_version"):
        parts.append(str(health["server_version"]))
    if isinstance(latency, (int, float)):
        parts.append(f"{latency:.1f} ms")
    pool = health.get("pool")
    if isinstance(pool, dict) and "size" in pool:
        parts.append(f"pool {pool.get('in_use', 0)}/{pool['size']} in use")
    if health.get("ok"):
        return Check("connection", "ok", ", ".join(parts))
    fix = (
        "check the database file's path and permissions"
        if "path" in health  # a file, no server
        else "check that the database server is running and the URL is right"
    )
    return Check("connection", "fail", f"{', '.join(parts)}: {health.get('error', 'not healthy')}",
                 fix)


def _migrations(store: Store, migrate: str) -> Check:
    rows = store.migration_status()
    if not rows:
        return Check("migrations", "ok", "this backend has no migrations")
    pending = [row["name"] for row in rows if not row["applied"]]
    if pending:
        return Check(
            "migrations",
            "fail",
            f"{len(pending)} of {len(rows)} pending: {', '.join(pending)}",
            f"run: {migrate}",
        )
    return Check("migrations", "ok", f"{len(rows)} applied, none pending")


def _tables(store: Store, migrate: str) -> Check:
    missing: list[str] = []
    rows = 0
    for spec in store.tables.values():
        try:
            rows += store.backend.count(spec, TRUE)
        except ClonestoreError:
            missing.append(spec.name)
    if missing:
        return Check(
            "tables",
            "fail",
            f"{len(missing)} of {len(store.tables)} missing: {', '.join(sorted(missing))}",
            f"run: {migrate}",
        )
    return Check("tables", "ok", f"{len(store.tables)} present, {rows} row(s)")


def _vectors(store: Store, health: dict[str, Any]) -> Check:
    if "pgvector" in health:
        found = health["pgvector"]
        searched = (health.get("vector_search") or {}).get("engine")
        if not found:
            return Check(
                "pgvector",
                "info",
                "not on this server; exact vector search runs in SQL over the stored arrays "
                "(slower than pgvector)",
            )
        if found.get("installed") and searched == "pgvector":
            return Check("pgvector", "ok", f"installed, version {found['installed']}")
        if found.get("installed"):
            return Check(
                "pgvector",
                "info",
                f"installed (version {found['installed']}) after migration 0012 ran: vector "
                "search runs in SQL over the stored arrays",
                "clonestore downgrade --to 0011_ops, then clonestore migrate (0012 makes "
                "memories.embedding pgvector's vector)",
            )
        return Check(
            "pgvector",
            "info",
            f"available (version {found.get('available')}) but not installed in this database; "
            "vector search runs in SQL over the stored arrays",
            "CREATE EXTENSION vector (as a superuser), then clonestore downgrade --to "
            "0011_ops and clonestore migrate, to search embeddings with pgvector",
        )
    capabilities = sorted(capabilities_of(store.backend))
    shown = ", ".join(capabilities) if capabilities else "none"
    return Check("capabilities", "info", f"backend capabilities: {shown}")


def _replicas(health: dict[str, Any]) -> list[Check]:
    replicas = health.get("replicas")
    if not replicas:
        return []
    entries = replicas.items() if isinstance(replicas, dict) else enumerate(replicas)
    checks = []
    for key, replica in entries:
        if not isinstance(replica, dict):
            continue
        name = redact_url(str(replica.get("url") or replica.get("name") or key))
        lags = ", ".join(
            f"{field} {value:.1f}" if isinstance(value, float) else f"{field} {value}"
            for field, value in replica.items()
            if "lag" in field and value is not None
        )
        detail = f"{name}: {lags or 'lag unknown'}"
        if replica.get("ok", True) and replica.get("healthy", True):
            checks.append(Check("replica", "ok", detail))
        elif replica.get("ok", True):
            checks.append(Check("replica", "warn", f"{detail}; lagging, reads skip it",
                                "check the standby's replication from the primary"))
        else:
            error = replica.get("error", "not healthy")
            checks.append(Check("replica", "fail", f"{detail}; {error}",
                                "check the standby and its replication from the primary"))
    return checks


def _lag_unknown(health: dict[str, Any]) -> bool:
    replicas = health.get("replicas") or []
    entries = replicas.values() if isinstance(replicas, dict) else replicas
    return any(
        isinstance(r, dict) and r.get("ok", True) and r.get("lag_seconds", 0) is None
        for r in entries
    )


def diagnose(store: Store, migrate: str = "clonestore migrate") -> list[Check]:
    """Every check of ``clonestore doctor`` on an open store; ``migrate`` is the command
    that creates what is missing (with the store's URL and plugins)."""
    health = store.health()
    # A store just opened may not have measured its replicas' lag yet: give it a moment.
    for _ in range(20):
        if not _lag_unknown(health):
            break
        time.sleep(0.1)
        health = store.health()
    checks = [_connection(health)]
    if not health.get("ok"):
        return checks
    checks += [
        _migrations(store, migrate),
        _tables(store, migrate),
        _vectors(store, health),
        *_replicas(health),
    ]
    if health.get("vectors_not_indexed"):
        checks.append(_oversized(store, health["vectors_not_indexed"]))
    return checks


def _oversized(store: Store, found: dict[str, int]) -> Check:
    where = ", ".join(f"{count} in {column}" for column, count in sorted(found.items()))
    return Check(
        "vector index",
        "warn",
        f"stored vectors longer than this store's limit of {store.max_vector_dimensions} "
        f"dimensions ({where}), written before the limit was enforced: kept and searched "
        "exactly, without the engine's index",
        "re-embed them at most that long (memories.update) or delete them",
    )


_MARK = {"ok": "[ok]", "warn": "[!!]", "fail": "[XX]", "info": "[--]"}


@cli.command(short_help="check the store's health and readiness")
@url_option
@plugins_option
@json_option
def doctor(url: str | None, plugins: tuple[str, ...], as_json: bool) -> None:
    """Check the connection (latency, pool), pending migrations, the tables of the
    core and of the plugins given with --plugins, pgvector on PostgreSQL, and the
    lag of read replicas where configured. Changes nothing; exits with status 1
    when a check fails."""
    options = StoreOptions(url, plugins)
    # The plugins' tables are checked below, and a SQLite file is not created.
    with open_store(options, check_tables=False, create_file=False) as store:
        checks = diagnose(store, migrate_command(options))
    if as_json:
        echo_json({"url": options.shown_url, "checks": [attrs.asdict(c) for c in checks]})
    else:
        click.echo(f"{options.shown_url}:")
        for check in checks:
            click.echo(f"  {_MARK[check.status]} {check.name}: {check.detail}")
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        first = failed[0]
        raise Failure(f"{len(failed)} check(s) failed, first {first.name}: {first.detail}",
                      first.fix)
