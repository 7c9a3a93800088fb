"""Row-level security in PostgreSQL (capability ``row_security``): a ``for_user`` view of
a store opened as the application role with ``row_security=on`` reads and writes only its
user's rows, raw statements on its connection included; the owner's store stays unscoped.

Roles and the database are created with names unique to the run and dropped after.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from click.testing import CliRunner
from clonestore_peewee.sql._backend import ALL, ONE, ROWCOUNT

import clonestore
from clonestore.cli import cli


class Roles:
    """The database's URLs as its owner and as the application role."""

    def __init__(self, server: str, database: str, owner: str, app: str) -> None:
        parts = urlsplit(server)
        host = parts.hostname or "127.0.0.1"
        port = f":{parts.port}" if parts.port else ""
        self.owner, self.app = owner, app
        self.owner_url = urlunsplit(("postgresql", f"{owner}@{host}{port}", f"/{database}", "", ""))
        self.app_url = urlunsplit(("postgresql", f"{app}@{host}{port}", f"/{database}", "", ""))
        self.super_url = urlunsplit(
            ("postgresql", f"{parts.username or 'postgres'}@{host}{port}", f"/{database}", "", "")
        )


@contextmanager
def made_roles(server: str) -> Iterator[Roles]:
    """An owner role, an application role and a database the owner owns, on ``server``
    (names unique to the run), dropped afterwards."""
    tag = secrets.token_hex(4)
    owner, app, database = f"cs_rls_owner_{tag}", f"cs_rls_app_{tag}", f"cs_rls_{tag}"
    admin = psycopg2.connect(server, connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE ROLE {owner} LOGIN")
            cur.execute(f"CREATE ROLE {app} LOGIN")
            cur.execute(f"CREATE DATABASE {database} OWNER {owner}")
        yield Roles(server, database, owner, app)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            cur.execute(f"DROP ROLE IF EXISTS {app}")
            cur.execute(f"DROP ROLE IF EXISTS {owner}")
        admin.close()


@pytest.fixture(scope="module")
def roles(postgres_server_url: str) -> Iterator[Roles]:
    with made_roles(postgres_server_url) as made:
        yield made


@pytest.fixture(scope="module")
def people(roles: Roles) -> dict[str, Any]:
    """Two users with a session, turns and a memory each, stored by the owner's store,
    which then turns row security on for the application role."""
    with clonestore.open(roles.owner_url) as store:
        made: dict[str, Any] = {}
        for name in ("ada", "bob"):
            user = store.users.create(email=f"{name}@example.com", name=name)
            session = store.sessions.create(user_id=user.id)
            store.sessions.add_turn(session.id, user_transcript=f"hi from {name}",
                                    llm_response="hello", llm_cost=Decimal("0.01"))
            store.memories.create(user_id=user.id, content=f"{name} likes tea",
                                  memory_type="fact")
            made[name] = {"user": user, "session": session}
        changes = store.backend.enable_row_security(list(store.tables.values()), roles.app)
        assert any("ENABLE ROW LEVEL SECURITY" in change for change in changes)
        # Idempotent: a second run changes nothing that matters and does not fail.
        store.backend.enable_row_security(list(store.tables.values()), roles.app)
    return made


def _raw(store: clonestore.Store, sql: str, params: Any = (), mode: int = ALL) -> Any:
    return store.backend.execute(sql, params, mode)  # type: ignore[attr-defined]


def _give_away(app: clonestore.Store, view: Any, ada: str, bob: str) -> None:
    """In a view's transaction, a raw statement moving its sessions to another user."""
    with view.transaction():
        view.users.get(ada)
        _raw(app, "UPDATE sessions SET user_id = %s WHERE user_id = %s", (bob, ada), ROWCOUNT)


def test_view_reads_and_writes_only_its_users_rows(roles: Roles, people: dict[str, Any]) -> None:
    ada, bob = people["ada"]["user"], people["bob"]["user"]
    with clonestore.open(roles.app_url, row_security=True) as app:
        view = app.for_user(ada.id)
        assert [s.user_id for s in view.sessions.find_many()] == [ada.id]
        assert view.users.get(ada.id).name == "ada"
        assert view.sessions.user_statistics(ada.id).total_turns == 1
        session = view.sessions.create()
        view.sessions.add_turn(session.id, user_transcript="again", llm_response="yes")
        view.sessions.end(session.id)
        assert view.sessions.user_statistics(ada.id).total_turns == 2
        assert [m.content for m in view.memories.find_many()] == ["ada likes tea"]
        with pytest.raises(clonestore.NotFound):
            view.sessions.get(people["bob"]["session"].id)
        assert view.export_user()["user"]["id"] == ada.id
    with clonestore.open(roles.owner_url) as owner:
        assert owner.sessions.count(user_id=ada.id) == 2
        assert owner.sessions.count(user_id=bob.id) == 1


def test_raw_statements_on_a_views_connection_see_only_its_user(
    roles: Roles, people: dict[str, Any]
) -> None:
    ada, bob = people["ada"]["user"], people["bob"]["user"]
    with clonestore.open(roles.app_url, row_security=True) as app:
        view = app.for_user(ada.id)
        with view.transaction():
            view.users.get(ada.id)  # the view's first statement sets its user
            assert _raw(app, "SELECT DISTINCT user_id FROM sessions") == [(ada.id,)]
            assert _raw(app, "SELECT id FROM users") == [(ada.id,)]
            assert _raw(app, "SELECT DISTINCT user_id FROM turns") == [(ada.id,)]
            # The text index (tokens of memories and documents) has its policy too.
            assert _raw(app, "SELECT DISTINCT owner FROM text_index_rows") == [(ada.id,)]
            assert _raw(app, "SELECT DISTINCT owner FROM text_index_terms") == [(ada.id,)]
            changed = _raw(app, "UPDATE sessions SET metadata = '{}' WHERE user_id = %s", (bob.id,),
                           ROWCOUNT)
            assert changed == 0
            deleted = _raw(app, "DELETE FROM memories WHERE user_id <> %s", (ada.id,), ROWCOUNT)
            assert deleted == 0
        with pytest.raises(clonestore.ClonestoreError, match="row-level security"):
            _give_away(app, view, ada.id, bob.id)
        # Outside a view's call there is no user: nothing owned is visible or writable.
        assert _raw(app, "SELECT count(*) FROM users", (), ONE) == (0,)
        assert _raw(app, "DELETE FROM sessions", (), ROWCOUNT) == 0
        assert app.users.count() == 0
        with pytest.raises(clonestore.BackendError, match="row-level security"):
            app.users.create(email="eve@example.com", name="eve")  # sign-up: the owner's
    # A connection of the application role's own, without clonestore: the same.
    conn = psycopg2.connect(roles.app_url.replace("postgresql://", "postgresql://", 1))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM users")
            assert cur.fetchone() == (0,)
            cur.execute("SELECT set_config('clonestore.user_id', %s, true)", (bob.id,))
            cur.execute("SELECT id FROM users")
            assert cur.fetchall() == [(bob.id,)]
    finally:
        conn.close()
    with clonestore.open(roles.owner_url) as owner:
        assert owner.sessions.count(user_id=bob.id) == 1
        assert owner.memories.count() == 2


def test_views_of_two_users_in_one_transaction_each_see_their_own(
    roles: Roles, people: dict[str, Any]
) -> None:
    ada, bob = people["ada"]["user"], people["bob"]["user"]
    with clonestore.open(roles.app_url, row_security=True) as app, app.transaction():
        assert app.for_user(ada.id).users.get(ada.id).id == ada.id
        assert app.for_user(bob.id).users.get(bob.id).id == bob.id
        try:
            with app.transaction():
                app.for_user(ada.id).memories.count()
                raise RuntimeError
        except RuntimeError:
            pass
        # The savepoint's rollback undid ada's setting: bob's is sent again.
        assert app.for_user(bob.id).memories.count() == 1
        assert _raw(app, "SELECT DISTINCT user_id FROM memories") == [(bob.id,)]


def test_the_owners_store_stays_unscoped(roles: Roles, people: dict[str, Any]) -> None:
    with clonestore.open(roles.owner_url) as owner:
        assert owner.users.count() >= 2
        assert owner.maintain().ok
        ada = people["ada"]["user"]
        assert owner.for_user(ada.id).users.get(ada.id).id == ada.id


def test_roles_the_policies_do_not_bind_are_refused(roles: Roles, people: dict[str, Any]) -> None:
    for url, why in ((roles.owner_url, "owns"), (roles.super_url, "superuser")):
        with pytest.raises(clonestore.ConfigurationError, match=why):
            clonestore.open(url, row_security=True)
        # Without create_tables: before its first statement (the migration check at open).
        with pytest.raises(clonestore.ConfigurationError, match=why):
            clonestore.open(url, row_security=True, create_tables=False)
    with clonestore.open(roles.app_url, row_security=True, create_tables=False) as app:
        assert app.users.count() == 0


def test_row_security_off_on_the_tables_is_refused(roles: Roles, people: dict[str, Any]) -> None:
    with clonestore.open(roles.owner_url) as owner:
        tables = list(owner.tables.values())
        owner.backend.disable_row_security(tables)  # type: ignore[attr-defined]
        try:
            with pytest.raises(clonestore.ConfigurationError, match="off on"):
                clonestore.open(roles.app_url, row_security=True)
        finally:
            owner.backend.enable_row_security(tables, roles.app)  # type: ignore[attr-defined]


def test_async_views_are_held_too(roles: Roles, people: dict[str, Any]) -> None:
    ada = people["ada"]["user"]

    async def scenario() -> None:
        async with await clonestore.open_async(roles.app_url, row_security=True) as app:
            view = app.for_user(ada.id)
            assert [u.id for u in await view.users.find_many()] == [ada.id]
            assert await view.memories.count() == 1
            async with view.transaction():
                await view.users.get(ada.id)
                assert await view.memories.count() == 1
            assert await app.users.count() == 0
            bob = people["bob"]["user"]
            async with app.transaction():
                assert (await app.for_user(bob.id).users.get(bob.id)).id == bob.id
                with contextlib.suppress(RuntimeError):
                    async with app.transaction():
                        assert await app.for_user(ada.id).memories.count() == 1
                        raise RuntimeError
                # The savepoint's rollback undid ada's setting: bob's is sent again.
                assert await app.for_user(bob.id).memories.count() == 1
            async with view.transaction():  # the setting goes with the BEGIN
                assert await view.memories.count() == 1
                assert await app.memories.count() == 1  # unscoped, in ada's transaction

    asyncio.run(scenario())


#: The acting user's setting and the server process, as a statement sees them.
_SETTING = "SELECT current_setting('clonestore.user_id', true), pg_backend_pid()"


def _unset(found: Any, pid: int) -> bool:
    """Whether ``found`` (a row of ``_SETTING``) comes from ``pid`` with no user set
    (a placeholder set once by ``SET LOCAL`` reads as '' once its transaction ends)."""
    return tuple(found) in ((None, pid), ("", pid))


def test_a_views_setting_ends_with_its_statement(roles: Roles, people: dict[str, Any]) -> None:
    """Outside a transaction the setting goes with the view's statement in one round
    trip and ends with it: the next statement on the same pooled connection (one
    connection in the pool) acts for nobody, after a failed statement too."""
    ada, bob = people["ada"]["user"], people["bob"]["user"]
    with clonestore.open(roles.app_url, row_security=True, pool_size=1) as app:
        view = app.for_user(ada.id)
        pid = _raw(app, "SELECT pg_backend_pid()", (), ONE)[0]
        assert view.users.get(ada.id).id == ada.id
        assert view.sessions.get(people["ada"]["session"].id).user_id == ada.id
        assert _unset(_raw(app, _SETTING, (), ONE), pid)
        assert _raw(app, "SELECT count(*) FROM sessions", (), ONE) == (0,)
        with pytest.raises(clonestore.AlreadyExists):
            view.users.update(ada.id, email="bob@example.com")  # refused by the engine
        assert _unset(_raw(app, _SETTING, (), ONE), pid)
        assert app.users.count() == 0
        assert app.for_user(bob.id).users.get(bob.id).id == bob.id

    async def scenario() -> None:
        async with await clonestore.open_async(roles.app_url, row_security=True,
                                               pool_size=1) as app:  # fmt: skip
            view = app.for_user(ada.id)

            def setting(sync: clonestore.Store) -> Any:
                return _raw(sync, _SETTING, (), ONE)

            pid = (await app.run_sync(setting))[1]
            assert (await view.users.get(ada.id)).id == ada.id
            assert _unset(await app.run_sync(setting), pid)
            with pytest.raises(clonestore.AlreadyExists):
                await view.users.update(ada.id, email="bob@example.com")
            assert _unset(await app.run_sync(setting), pid)
            assert await app.users.count() == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("url", ["memory://", "sqlite://", "mariadb://root@127.0.0.1:1/none"])
def test_other_engines_refuse_row_security(url: str) -> None:
    with pytest.raises(clonestore.ConfigurationError, match="PostgreSQL capability"):
        clonestore.open(url, row_security=True)
    with pytest.raises(clonestore.ConfigurationError, match="PostgreSQL capability"):
        clonestore.open(f"{url}?row_security=on")


@pytest.mark.parametrize("layout", ["citus", "partitioned"])
def test_other_layouts_refuse_row_security(roles: Roles, layout: str) -> None:
    with pytest.raises(clonestore.ConfigurationError, match=f"layout={layout}"):
        clonestore.open(roles.owner_url, layout=layout, row_security=True)


def test_the_command_turns_it_off_and_on(
    roles: Roles, people: dict[str, Any], tmp_path: Any
) -> None:
    clonestore.open(roles.owner_url, plugins=["cache", "ratelimit", "audit"]).close()
    runner = CliRunner()
    off = runner.invoke(cli, ["row-security", "disable", "--url", roles.owner_url])
    assert off.exit_code == 0, off.output
    assert "row-level security off" in off.output
    with pytest.raises(clonestore.ConfigurationError, match="off on"):
        clonestore.open(roles.app_url, row_security=True)
    on = runner.invoke(cli, ["row-security", "enable", roles.app, "--url", roles.owner_url,
                             "--plugins", "cache,ratelimit,audit", "--json"])
    assert on.exit_code == 0, on.output
    statements = json.loads(on.output)["statements"]
    assert any("ratelimit_windows" in statement for statement in statements)
    ada = people["ada"]["user"]
    plugins = ["cache", "ratelimit", "audit"]
    with clonestore.open(roles.app_url, row_security=True, plugins=plugins) as app:
        view = app.for_user(ada.id)
        with app.context(actor_id=ada.id, request_id="r-rls"):
            view.users.update(ada.id, name="Ada L.")
        assert view.users.get(ada.id).name == "Ada L."
    with clonestore.open(roles.owner_url, plugins=plugins) as owner:
        assert owner.audit.verify().ok
        assert owner.users.get(ada.id).name == "Ada L."
    clonestore.open(f"sqlite:///{tmp_path}/x.db").close()
    refused = runner.invoke(cli, ["row-security", "enable", "app",
                                  "--url", f"sqlite:///{tmp_path}/x.db"])
    assert refused.exit_code == 1
    assert "PostgreSQL capability" in refused.output


def test_reads_on_replicas_are_held_too(postgres_replicas: Any) -> None:
    """On a primary with hot standbys, a view's reads served by a standby carry the user
    too (each replica's pool has the primary's options)."""
    pair = postgres_replicas
    with made_roles(pair.url(pair.primary_port)) as roles:
        with clonestore.open(roles.owner_url) as store:
            ada, bob = (store.users.create(email=f"{n}@example.com", name=n) for n in "ab")
            for user in (ada, bob):
                store.memories.create(user_id=user.id, content=f"{user.name}", memory_type="fact")
            store.backend.enable_row_security(list(store.tables.values()), roles.app)  # type: ignore[attr-defined]
        replicas = "&".join(f"replica=127.0.0.1:{port}" for port in pair.standbys)
        url = f"{roles.app_url}?{replicas}&replica_check_interval=0.05&row_security=on"
        with clonestore.open(url) as app_store:
            view = app_store.for_user(ada.id)

            def replica_reads() -> int:
                return sum(r["reads"] for r in app_store.health()["replicas"])

            for _ in range(200):  # until a standby has replayed the rows and serves a read
                before = replica_reads()
                found = [m.content for m in view.memories.find_many()]
                assert found in ([], ["a"])
                if found == ["a"] and replica_reads() > before:
                    break
                time.sleep(0.05)
            else:
                pytest.fail(f"no standby served the view's read: {app_store.health()}")
            assert app_store.memories.count() == 0  # no user: nothing, wherever it is read


def test_a_view_erases_its_user(roles: Roles, people: dict[str, Any]) -> None:
    plugins = ["cache", "ratelimit", "audit"]
    with clonestore.open(roles.owner_url, plugins=plugins) as owner:
        carol = owner.users.create(email="carol@example.com", name="carol")
        session = owner.sessions.create(user_id=carol.id)
        owner.sessions.add_turn(session.id, user_transcript="hi", llm_response="hello")
        owner.sessions.end(session.id)
        owner.memories.create(user_id=carol.id, content="carol", memory_type="fact")
        others = owner.memories.count()
        # The plugins' tables are new here: enable again grants them.
        owner.backend.enable_row_security(list(owner.tables.values()), roles.app)  # type: ignore[attr-defined]
    with clonestore.open(roles.app_url, row_security=True, plugins=plugins) as app:
        removed = app.for_user(carol.id).erase_user()
        assert removed["users"] == 1
    with clonestore.open(roles.owner_url, plugins=plugins) as owner:
        with pytest.raises(clonestore.NotFound):
            owner.users.get(carol.id)
        assert owner.memories.count() == others - 1
        assert owner.audit.verify().ok


#: Tables with an owner-like column that have no policy, on purpose (docs/row-security.md):
#: the audit chains are named by owner but written for every actor.
UNPOLICED = {"audit_entries", "audit_purges"}


def test_every_table_holding_users_data_is_covered(roles: Roles, people: dict[str, Any]) -> None:
    """After enable, every table of the database (the core's, the plugins' and the
    backend's own) is readable by the role, and every one with a user_id or owner column
    has row security on: a table added later without either fails here."""
    plugins = ["cache", "ratelimit", "audit"]
    with clonestore.open(roles.owner_url, plugins=plugins) as owner:
        owner.backend.enable_row_security(list(owner.tables.values()), roles.app)  # type: ignore[attr-defined]
        rows = _raw(owner, "SELECT c.relname, c.relrowsecurity, has_table_privilege(%s, c.oid, "
                    "'SELECT'), EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND "
                    "a.attname IN ('user_id', 'owner') AND NOT a.attisdropped) FROM pg_class c "
                    "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND "
                    "c.relnamespace = 'public'::regnamespace", (roles.app,))
    assert len(rows) > 20
    assert [name for name, _, readable, _ in rows if not readable] == []
    uncovered = [name for name, secured, _, owned in rows
                 if owned and not secured and name not in UNPOLICED]
    assert uncovered == []
