"""The production path (README, "Production"): migrate with plugins, open with
create_tables=False, write with all three plugins; and the schema commands that gate
a deploy. On a fresh database of each SQL engine (memory:// has no schema to migrate)."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from types import ModuleType

import pytest

import clonestore
from clonestore import Column, ConfigurationError, TableSpec, Unique, ValidationError
from clonestore.query import TRUE
from tests.test_migrations import _cli, _columns, _indexes, fresh_url, migrations_on

__all__ = ["fresh_url"]  # the fixture, imported for this module's tests

PLUGINS = ["cache", "ratelimit", "audit"]
PLUGIN_TABLES = {
    "cache": ("cache_embeddings", "cache_vector_search", "cache_llm_responses"),
    "ratelimit": ("ratelimit_windows", "ratelimit_buckets"),
    "audit": ("audit_entries", "audit_heads", "audit_purges"),
}
#: Each plugin's newest migration, whose frozen specs are its live tables.
NEWEST = {"audit": "0003_drop_created_at_index"}


def _plugin_migration(plugin: str, name: str = "0001_initial") -> ModuleType:
    package = importlib.util.find_spec(f"clonestore_{plugin}.migrations")
    assert package is not None
    assert package.submodule_search_locations
    path = Path(next(iter(package.submodule_search_locations))) / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_frozen_{plugin}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_production_walk_through(fresh_url: str) -> None:
    """clonestore migrate --plugins cache,ratelimit,audit, then open(create_tables=False)
    with the three plugins: a write is audited, cached and rate-limited; status --check
    passes."""
    migrated = _cli("migrate", "--url", fresh_url, "--plugins", ",".join(PLUGINS))
    assert migrated.returncode == 0, migrated.stderr
    for plugin in PLUGINS:
        assert f"applied {plugin}/0001_initial" in migrated.stdout
    checked = _cli("status", "--url", fresh_url, "--plugins", ",".join(PLUGINS), "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with clonestore.open(fresh_url, plugins=PLUGINS, create_tables=False) as store:
        with store.context(actor_id="deployer", ip_address="203.0.113.9"):
            user = store.users.create(email="prod@example.com", name="Prod")
        assert store.ratelimit.check_and_increment(user.id, "/api/chat", 10, 60).remaining == 9
        store.cache.set_llm_response("prompt", "answer", "gemini-flash", 60)
        assert store.cache.get_llm_response("prompt").response == "answer"
        assert [e.action for e in store.audit.find_by_user(user.id)] == ["user.create"]
        assert store.audit.verify().ok


def test_opening_without_the_plugins_tables_names_the_command(fresh_url: str) -> None:
    """After migrating the core only, open(create_tables=False, plugins=[...]) refuses at
    open, naming the tables and the exact command (its URL redacted), and writes nothing."""
    with clonestore.open(fresh_url, create_tables=False) as store:
        store.migrate()
    with pytest.raises(ConfigurationError) as refused:
        clonestore.open(fresh_url, plugins=["audit"], create_tables=False)
    message = str(refused.value)
    assert "audit_entries" in message
    assert f"clonestore migrate --url {clonestore.open(fresh_url).url} --plugins audit" in message


def test_store_migrate_applies_the_plugins_migrations(fresh_url: str) -> None:
    """store.migrate() on a store opened with plugins (check_tables=False) applies the
    core's then the plugins' migrations; status lists them all applied."""
    with clonestore.open(
        fresh_url, plugins=PLUGINS, create_tables=False, check_tables=False
    ) as store:
        applied = store.migrate()
        core = migrations_on(fresh_url)
        assert applied[: len(core)] == core
        plugins = [f"{p}/0001_initial" for p in PLUGINS]
        plugins += [
            "audit/0002_owner_chains",
            "audit/0003_drop_created_at_index",
            "cache/0002_float32_embeddings",
            "cache/0003_pg_float32_embeddings",
        ]
        assert sorted(applied[len(core) :]) == sorted(plugins)
        assert all(row["applied"] for row in store.migration_status())
        assert store.migrate() == []


def test_plugin_migrations_create_exactly_the_plugins_tables(
    fresh_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Each plugin's newest frozen specs equal its live table specs, and the migrated
    columns and indexes equal those of tables created from the live specs on open."""
    for plugin, tables in PLUGIN_TABLES.items():
        newest = _plugin_migration(plugin, NEWEST.get(plugin, "0001_initial"))
        frozen = {spec.name: spec for spec in newest.TABLES}
        with clonestore.open("memory://", plugins=[plugin]) as live:
            assert {name: live.tables[name] for name in tables} == frozen, plugin
    with clonestore.open(fresh_url, plugins=PLUGINS, create_tables=False, check_tables=False) as m:
        m.migrate()
        database = m.backend.database
        reference = clonestore.open(f"sqlite:///{tmp_path / 'ref.db'}", plugins=PLUGINS)
        if fresh_url.startswith("postgres"):
            reference.close()
            reference = clonestore.open(
                str(request.getfixturevalue("postgres_url")), plugins=PLUGINS
            )
        ref_db = reference.backend.database
        with reference, database.connection_context(), ref_db.connection_context():
            for table in (t for tables in PLUGIN_TABLES.values() for t in tables):
                assert _columns(database, table) == _columns(ref_db, table)
                assert _indexes(database, table) == _indexes(ref_db, table)


def test_status_changes_nothing_and_check_gates_a_deploy(tmp_path: Path) -> None:
    """status on a SQLite file that does not exist creates none, lists every migration
    pending, prints the real URL to migrate and, with --check, exits 1."""
    path = tmp_path / "deploy.db"
    url = f"sqlite:///{path}"
    plain = _cli("status", "--url", url)
    assert plain.returncode == 0, plain.stderr
    gated = _cli("status", "--url", url, "--plugins", "audit", "--check")
    assert gated.returncode == 1
    assert f"run: clonestore migrate --url {url} --plugins audit" in gated.stdout
    assert "[ ] audit/0001_initial" in gated.stdout
    assert "URL" not in gated.stdout.replace(url, "")
    assert not path.exists()


def test_dry_run_prints_the_sql_and_changes_nothing(fresh_url: str) -> None:
    """migrate --dry-run prints each pending migration's CREATE statements; afterwards
    every migration is still pending."""
    planned = _cli("migrate", "--url", fresh_url, "--plugins", "audit", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    for name in (*migrations_on(fresh_url), "audit/0001_initial"):
        assert f"-- {name}" in planned.stdout
    assert 'CREATE TABLE IF NOT EXISTS "users"' in planned.stdout
    assert 'CREATE TABLE IF NOT EXISTS "audit_log"' in planned.stdout
    with clonestore.open(
        fresh_url, plugins=["audit"], create_tables=False, check_tables=False
    ) as store:
        assert not any(row["applied"] for row in store.migration_status())
        assert store.backend.missing_tables(list(store.tables.values())) == list(store.tables)


def test_migrate_to_and_downgrade(fresh_url: str) -> None:
    """migrate --to NAME stops after NAME; downgrade --to NAME undoes what came after it
    with down() (a plugin's too); downgrade alone undoes the newest core migration."""
    core = migrations_on(fresh_url)
    first = _cli("migrate", "--url", fresh_url, "--to", core[0])
    assert first.returncode == 0, first.stderr
    assert f"applied {core[1]}" not in first.stdout
    with clonestore.open(fresh_url, create_tables=False) as store:
        assert [r["applied"] for r in store.migration_status()] == [True] + [False] * (
            len(core) - 1
        )
    assert _cli("migrate", "--url", fresh_url, "--plugins", "audit").returncode == 0
    back = _cli("downgrade", "--url", fresh_url, "--to", core[0])
    assert back.returncode == 0, back.stderr
    assert f"reverted {len(core) - 1} migration(s)" in back.stdout
    with clonestore.open(
        fresh_url, plugins=["audit"], create_tables=False, check_tables=False
    ) as store:
        applied = {r["name"] for r in store.migration_status() if r["applied"]}
        assert applied == {
            core[0],
            "audit/0001_initial",
            "audit/0002_owner_chains",
            "audit/0003_drop_created_at_index",
        }
        assert store.downgrade(to="audit/0003_drop_created_at_index") == []
        with pytest.raises(ValidationError, match="nope"):
            store.downgrade(to="audit/nope")
    assert _cli("downgrade", "--url", fresh_url).stdout.count("reverted 1 migration(s)") == 1
    with clonestore.open(fresh_url, create_tables=False) as store:
        assert not any(r["applied"] for r in store.migration_status())


SCRIPT = """
from clonestore.spi import Column, TableSpec, Unique

TABLES = (TableSpec(name="things", columns=(Column(name="id", kind="id"),
          Column(name="key", kind="key")), unique=(Unique(("key",)),)),)

def up(migrator, db):
    migrator.backend.create_spec_tables(TABLES)

def down(migrator, db):
    migrator.backend.drop_spec_tables(TABLES)
"""


def test_clonestore_migrations(
    fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A third party's plugin declares its migrations with clonestore_migrations; open()
    applies them after the core's, status lists them under the plugin's name, and its
    table works."""
    package = tmp_path / "things_migrations"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "0001_initial.py").write_text(SCRIPT)
    monkeypatch.syspath_prepend(str(tmp_path))
    table = TableSpec(
        name="things",
        columns=(Column(name="id", kind="id"), Column(name="key", kind="key")),
        unique=(Unique(("key",)),),
    )

    class Things:
        @clonestore.hookimpl
        def clonestore_tables(self) -> list[TableSpec]:
            return [table]

        @clonestore.hookimpl
        def clonestore_migrations(self) -> dict[str, str]:
            return {"things": "things_migrations"}

    with clonestore.open(fresh_url, plugins=[Things()]) as store:
        status = {row["name"]: row["applied"] for row in store.migration_status()}
        core = dict.fromkeys(migrations_on(fresh_url), True)
        assert status == {**core, "things/0001_initial": True}
        store.backend.insert(table, {"id": str(uuid.uuid4()), "key": "k"})
        assert store.backend.count(table, TRUE) == 1
