"""Every hook: specified with a docstring, documented in the README, and proven here by a
small plugin object passed to ``clonestore.open(url, plugins=[obj])``.

Tests named ``test_<hookname>`` are what ``test_every_hook_has_a_test`` looks for.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from clonestore_memory import MemoryBackend

import clonestore
from clonestore import AlreadyExists, ClonestoreError, ConfigurationError, RateLimited, hookspecs
from clonestore.query import TRUE
from clonestore.spi import (
    CAPABILITY_PROTOCOLS,
    AppendOnly,
    Column,
    TableSpec,
    capabilities_of,
    withhold,
)
from clonestore.testing.contract._builders import (
    aborted,
    new_document,
    new_memory,
    new_user,
    refused,
    unique_email,
)

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("clonestore_"))


def _readme_hook_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Hook reference\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "README.md has no '## Hook reference' section"
    return match.group(1)


def _test_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        names.update(re.findall(r"^\s*def (test_\w+)\(", path.read_text(encoding="utf-8"), re.M))
    return names


# ----------------------------------------------------------------------------- meta


def test_hookspecs_exist():
    """hookspecs.py declares the hooks DESIGN section 5 expects (and only clonestore_* hooks)."""
    expected = {
        "clonestore_backends",
        "clonestore_tables",
        "clonestore_store_opened",
        "clonestore_store_closed",
        "clonestore_before_write",
        "clonestore_after_write",
        "clonestore_after_commit",
        "clonestore_read",
    }
    assert expected <= set(HOOKS)
    marked = {
        name
        for name, value in vars(hookspecs).items()
        if callable(value) and hasattr(value, "clonestore_spec")
    }
    assert marked == set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docstring(hook):
    """Each hookspec carries a docstring: its contract."""
    doc = getattr(hookspecs, hook).__doc__
    assert doc
    assert doc.strip()


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    """Each hook is listed, in backticks, in the README's hook reference."""
    assert f"`{hook}`" in _readme_hook_section()


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    """Each hook has a test named test_<hookname> under tests/."""
    assert f"test_{hook}" in _test_names()


# ----------------------------------------------------------------------------- plugins used below


class Recorder:
    """Remembers every write-side hook call."""

    def __init__(self):
        self.calls: list[tuple[str, object]] = []
        self.commits: list[list[clonestore.Operation]] = []
        self.failures: list[tuple[clonestore.Operation, BaseException]] = []

    @clonestore.hookimpl
    def clonestore_before_write(self, store, op):
        self.calls.append(("before", op))

    @clonestore.hookimpl
    def clonestore_after_write(self, store, op, result):
        self.calls.append(("after", op))

    @clonestore.hookimpl
    def clonestore_after_commit(self, store, ops):
        self.commits.append(list(ops))

    @clonestore.hookimpl
    def clonestore_write_failed(self, store, op, error):
        self.failures.append((op, error))

    def actions(self, stage):
        return [op.action for kind, op in self.calls if kind == stage]


def _uuid():
    return str(uuid.uuid4())


NOTES = TableSpec(
    name="hook_test_notes",
    columns=(
        Column(name="id", kind="id"),
        Column(name="user_id", kind="id"),
        Column(name="body", kind="text"),
    ),
)


# ----------------------------------------------------------------------------- backends / tables


def test_clonestore_backends():
    """A plugin offering a URL scheme serves stores opened on it, called with URL and options."""
    calls = []

    class Offers:
        @clonestore.hookimpl
        def clonestore_backends(self):
            def factory(url, **options):
                calls.append((url, options))
                return MemoryBackend("memory://")

            return {"hooktest": factory}

    with clonestore.open("hooktest://somewhere/x", plugins=[Offers()], answer=42) as store:
        user = new_user(store)
        assert store.users.get(user.id) == user
    assert calls == [("hooktest://somewhere/x", {"answer": 42})]
    with pytest.raises(ConfigurationError):
        clonestore.open("hooktest://somewhere/x")


def test_clonestore_tables(store_factory):
    """Tables a plugin declares are created with the store's own and usable via the SPI."""

    class Declares:
        @clonestore.hookimpl
        def clonestore_tables(self):
            return [NOTES]

    store = store_factory(plugins=[Declares()])
    assert store.tables["hook_test_notes"] == NOTES
    row = {"id": _uuid(), "user_id": _uuid(), "body": "hi"}
    store.backend.insert(NOTES, row)
    assert store.backend.get(NOTES, row["id"]) == row


def test_clonestore_tables_conflict_is_a_configuration_error(store_factory):
    """Two plugins declaring different tables of one name make open() fail."""

    class First:
        @clonestore.hookimpl
        def clonestore_tables(self):
            return [NOTES]

    class Second:
        @clonestore.hookimpl
        def clonestore_tables(self):
            return [TableSpec(name=NOTES.name, columns=(Column(name="id", kind="id"),))]

    with pytest.raises(ConfigurationError):
        store_factory(plugins=[First(), Second()])


class _BareBackend(MemoryBackend):
    """memory:// without its optional capabilities, served as bare://."""

    name = "bare"
    capabilities: frozenset[str] = frozenset()

    def __init__(self, url: str = "memory://", **options: object) -> None:
        super().__init__(url, **options)
        withhold(self, *CAPABILITY_PROTOCOLS)


class _OffersBare:
    @clonestore.hookimpl
    def clonestore_backends(self):
        return {"bare": _BareBackend}


class _NeedsListenNotify:
    @clonestore.hookimpl
    def clonestore_required_capabilities(self):
        return ["listen_notify"]


def test_clonestore_required_capabilities(store_factory):
    """A needed capability the backend lacks fails open(), naming plugin, capability, backend."""
    backend = store_factory().backend
    if "listen_notify" in capabilities_of(backend):
        store_factory(plugins=[_NeedsListenNotify()]).close()
    else:
        with pytest.raises(ConfigurationError, match=r"_NeedsListenNotify.*listen_notify"):
            store_factory(plugins=[_NeedsListenNotify()])
    with pytest.raises(
        ConfigurationError, match=r"'_NeedsListenNotify' needs the 'listen_notify'.*'bare' backend"
    ):
        clonestore.open("bare://", plugins=[_OffersBare(), _NeedsListenNotify()])


class _ClaimsMigrations(MemoryBackend):
    """memory:// naming the migrations capability (which has a protocol) by name."""

    name = "claims"
    capabilities: frozenset[str] = MemoryBackend.capabilities | {"migrations"}


class _OffersClaims:
    @clonestore.hookimpl
    def clonestore_backends(self):
        return {"claims": _ClaimsMigrations}


def test_a_capability_with_a_protocol_named_in_capabilities_fails_open():
    """A capability with a protocol is declared by implementing it only: naming it in
    capabilities fails open(), naming the capability and its protocol."""
    with pytest.raises(
        ConfigurationError, match=r"'claims' backend names the 'migrations'.*spi\.Migrations"
    ):
        clonestore.open("claims://", plugins=[_OffersClaims()])


def test_clonestore_required_capabilities_must_be_known():
    """Naming a capability clonestore does not know fails at open()."""

    class Confused:
        @clonestore.hookimpl
        def clonestore_required_capabilities(self):
            return ["time_travel"]

    with pytest.raises(ConfigurationError, match="'time_travel', which is not a clonestore"):
        clonestore.open("memory://", plugins=[Confused()])


def test_append_only_tables_need_a_backend_that_enforces_them():
    """An append_only table on a backend without it fails open() naming plugin and table."""
    from clonestore_audit import AuditPlugin

    ledger = TableSpec(
        name="hook_test_ledger",
        columns=(Column(name="id", kind="id"), Column(name="seq", kind="int")),
        append_only=AppendOnly(purge_by="seq"),
    )

    class Ledger:
        @clonestore.hookimpl
        def clonestore_tables(self):
            return [ledger]

    with pytest.raises(ConfigurationError, match=r"'Ledger'.*'append_only'.*hook_test_ledger"):
        clonestore.open("bare://", plugins=[_OffersBare(), Ledger()])
    with pytest.raises(ConfigurationError, match=r"'audit' needs the 'append_only'.*'bare'"):
        clonestore.open("bare://", plugins=[_OffersBare(), "audit"])
    with clonestore.open("bare://", plugins=[_OffersBare(), AuditPlugin(guard=False)]) as store:
        assert not store.audit.guarded
        assert store.audit.log("user.login").seq == 1


# ----------------------------------------------------------------------------- lifecycle


def test_clonestore_store_opened(store_factory):
    """store_opened runs once per store, after its tables exist, and may attach services."""
    seen = []

    class Service:
        def __init__(self, store):
            self.store = store

        def users(self):
            return self.store.users.count()

    class Opens:
        @clonestore.hookimpl
        def clonestore_store_opened(self, store):
            seen.append((store, store.users.count()))
            store.attach("hooktest", Service(store))

    plugin = Opens()
    store = store_factory(plugins=[plugin])
    assert [s for s, _ in seen] == [store]
    new_user(store)
    assert store.hooktest.users() == 1
    other = store_factory(plugins=[plugin])
    assert [s for s, _ in seen] == [store, other]
    with pytest.raises(ConfigurationError):
        store.attach("hooktest", object())


def test_clonestore_store_closed(store_factory):
    """store_closed runs once, however often close() is called, with the backend usable."""
    seen = []

    class Closes:
        @clonestore.hookimpl
        def clonestore_store_closed(self, store):
            seen.append(store.users.count())

    store = store_factory(plugins=[Closes()])
    new_user(store)
    store.close()
    store.close()
    assert seen == [1]


# ----------------------------------------------------------------------------- writes


def test_clonestore_before_write(store_factory):
    """before_write sees every write (bulk included) before it happens and may refuse it;
    a refused write writes nothing."""
    recorder = Recorder()

    class Refuses:
        @clonestore.hookimpl
        def clonestore_before_write(self, store, op):
            if op.table.name == "documents":
                raise RateLimited("no documents today", retry_after=1.5)

    store = store_factory(plugins=[recorder, Refuses()])
    user = new_user(store)
    (_, op), *_ = recorder.calls
    assert (op.action, op.kind, op.table.name, op.key) == (
        "user.create",
        "insert",
        "users",
        user.id,
    )
    assert op.changes["email"] == user.email
    error = refused(store, lambda: new_document(store, user), RateLimited)
    assert error.retry_after == 1.5
    rows = [{"email": unique_email(), "name": f"B{i}"} for i in range(3)]
    store.users.create_many(rows)
    bulk = [op for kind, op in recorder.calls if kind == "before" and op.kind == "insert_many"]
    assert [r["name"] for r in bulk[0].rows] == ["B0", "B1", "B2"]
    store.users.update_many({"name": "B1"}, name="Bee")
    assert recorder.actions("before")[-1] == "user.update_many"


def test_clonestore_before_write_refusal_inside_a_transaction(store_factory):
    """A write refused by before_write inside a transaction leaves the transaction usable."""

    class RefusesMemories:
        @clonestore.hookimpl
        def clonestore_before_write(self, store, op):
            if op.table.name == "memories":
                raise RateLimited("memory quota")

    store = store_factory(plugins=[RefusesMemories()])
    with store.transaction():
        user = new_user(store)
        with pytest.raises(RateLimited):
            new_memory(store, user)
        document = new_document(store, user)
    assert store.documents.get(document.id) == document
    assert store.memories.count() == 0


def test_clonestore_after_write(store_factory):
    """after_write runs after the write, inside its transaction (it sees the row), and an
    error there rolls the write back."""
    seen = []

    class Checks:
        @clonestore.hookimpl
        def clonestore_after_write(self, store, op, result):
            row = store.backend.get(op.table, op.key) if op.key else None
            seen.append((op.action, store.in_transaction, row))
            if op.action == "user.update" and op.changes.get("name") == "forbidden":
                raise ClonestoreError("audit refused")

    store = store_factory(plugins=[Checks()])
    user = new_user(store)
    action, in_tx, row = seen[0]
    assert (action, in_tx, row["email"]) == ("user.create", True, user.email)
    refused(store, lambda: store.users.update(user.id, name="forbidden"), ClonestoreError)
    assert store.users.get(user.id) == user
    renamed = store.users.update(user.id, name="fine")
    assert seen[-1][2]["name"] == "fine"
    assert seen[-1][2]["version"] == renamed.version


def test_clonestore_after_write_receives_the_spi_result(store_factory):
    """after_write gets what the SPI call returned: changed rows for an update, the count
    for a delete, None for an insert (whose row is op.changes)."""
    results = []

    class Keeps:
        @clonestore.hookimpl
        def clonestore_after_write(self, store, op, result):
            results.append((op.kind, op.changes, result))

    store = store_factory(plugins=[Keeps()])
    user = new_user(store)
    session = store.sessions.create(user_id=user.id)
    store.users.update(user.id, name="Changed")
    store.sessions.hard_delete(session.id)
    kind, changes, result = results[0]
    assert (kind, changes["email"], result) == ("insert", user.email, None)
    updates = [result for kind, changes, result in results if kind == "update"]
    assert [[row["name"] for row in rows] for rows in updates[:1]] == [["Changed"]]
    assert updates[1:] == [[]]  # the session's memories (none) lose their session_id
    deletes = [result for kind, _, result in results if kind == "delete"]
    assert sorted(deletes) == [0, 1]  # the session, and its (no) turns


def test_clonestore_write_failed(store_factory):
    """write_failed is called once per failed write, with the error the caller sees; never
    for successful writes or for input refused before any write."""
    recorder = Recorder()
    store = store_factory(plugins=[recorder])
    new_user(store, email="taken@example.com")
    assert recorder.failures == []
    with pytest.raises(AlreadyExists) as caught:
        new_user(store, email="TAKEN@example.com")
    assert len(recorder.failures) == 1
    op, error = recorder.failures[0]
    assert (op.action, error) == ("user.create", caught.value)
    with pytest.raises(clonestore.ValidationError):
        new_user(store, name="")
    assert len(recorder.failures) == 1
    with store.transaction():
        with pytest.raises(AlreadyExists):
            new_user(store, email="taken@example.com")
        new_user(store)
    assert len(recorder.failures) == 2


def test_clonestore_write_failed_for_refusals(store_factory):
    """A write refused by before_write is reported to write_failed once."""
    recorder = Recorder()

    class Refuses:
        @clonestore.hookimpl
        def clonestore_before_write(self, store, op):
            raise RateLimited("closed")

    store = store_factory(plugins=[recorder, Refuses()])
    with pytest.raises(RateLimited):
        new_user(store)
    assert [type(e) for _, e in recorder.failures] == [RateLimited]


def test_clonestore_after_commit(store_factory):
    """after_commit runs once the outermost transaction commits, with its writes in order,
    never after a rollback, and without the writes of rolled-back savepoints."""
    recorder = Recorder()
    store = store_factory(plugins=[recorder])
    user = new_user(store)
    assert [[op.action for op in ops] for ops in recorder.commits] == [["user.create"]]
    recorder.commits.clear()
    with store.transaction():
        new_document(store, user)
        with store.transaction():
            store.users.update(user.id, name="kept")
        assert recorder.commits == []
        with aborted(store.transaction()):
            store.users.update(user.id, name="rolled back")
        new_memory(store, user)
    assert [[op.action for op in ops] for ops in recorder.commits] == [
        ["document.create", "user.update", "memory.create"]
    ]
    recorder.commits.clear()
    with aborted(store.transaction()):
        new_user(store)
    assert recorder.commits == []
    store.users.get(user.id)
    store.users.find_many()
    assert recorder.commits == []


class BeforeCommit:
    """Writes a row of its own table just before each commit, and may refuse to commit."""

    NOTES = TableSpec(name="commit_notes", columns=(Column(name="id", kind="id"),
                                                    Column(name="actions", kind="json")))

    def __init__(self):
        self.refuse = False

    @clonestore.hookimpl
    def clonestore_tables(self):
        return [self.NOTES]

    @clonestore.hookimpl
    def clonestore_before_commit(self, store, ops):
        assert store.in_transaction
        if self.refuse:
            raise ClonestoreError("refused at commit")
        store.backend.insert(self.NOTES, {"id": str(uuid.uuid4()),
                                          "actions": [op.action for op in ops]})


def test_clonestore_before_commit(store_factory):
    """before_commit runs inside the outermost transaction, once, with its surviving writes
    in order: what it writes commits with them, its error rolls them back, and a rollback
    or a transaction without writes never calls it."""
    hook = BeforeCommit()
    store = store_factory(plugins=[hook])

    def notes():
        return [row["actions"] for row in store.backend.select(BeforeCommit.NOTES, TRUE)]

    user = new_user(store)
    assert notes() == [["user.create"]]
    with store.transaction():
        with store.transaction():
            store.users.update(user.id, name="kept")
        with aborted(store.transaction()):
            store.users.update(user.id, name="rolled back")
        new_document(store, user)
    assert sorted(notes()) == [["user.create"], ["user.update", "document.create"]]
    with aborted(store.transaction()):
        store.users.update(user.id, name="never")
    with store.transaction():
        store.users.get(user.id)
    assert len(notes()) == 2
    hook.refuse = True
    with pytest.raises(ClonestoreError, match="refused at commit"):
        store.users.update(user.id, name="refused")
    assert store.users.get(user.id).name == "kept"
    assert len(notes()) == 2


def test_clonestore_after_commit_sees_cascades(store_factory):
    """after_commit of a user's soft delete lists the cascade's writes too."""
    recorder = Recorder()
    store = store_factory(plugins=[recorder])
    user = new_user(store)
    new_document(store, user)
    recorder.commits.clear()
    store.users.delete(user.id)
    (ops,) = recorder.commits
    tables = [op.table.name for op in ops]
    assert tables[0] == "users"
    assert set(tables) == {"users", "voice_models", "face_models", "documents", "memories"}


# ----------------------------------------------------------------------------- reads


def test_clonestore_read(store_factory):
    """read may answer a read itself; fetch reaches the backend; passing (None) lets the
    backend answer."""
    ops = []
    answer = {}

    class Reads:
        @clonestore.hookimpl
        def clonestore_read(self, store, op, fetch):
            ops.append(op)
            if op.kind == "get" and op.key in answer:
                return answer[op.key]
            if op.kind == "select":
                return fetch()
            return None

    store = store_factory(plugins=[Reads()])
    user = new_user(store)
    assert store.users.get(user.id) == user
    assert store.users.find_many() == [user]
    assert store.users.count() == 1
    assert {op.kind for op in ops} >= {"get", "select", "count"}
    get_op = next(op for op in ops if op.kind == "get")
    assert (get_op.action, get_op.table.name, get_op.key) == ("user.get", "users", user.id)
    cached = dict(store.backend.get(store.tables["users"], user.id), name="From the plugin")
    answer[user.id] = cached
    assert store.users.get(user.id).name == "From the plugin"


def test_clonestore_read_fetch_asks_the_backend_once(store_factory):
    """When a plugin calls fetch and passes, the fetched result is the answer."""
    fetched = []

    class Peeks:
        @clonestore.hookimpl
        def clonestore_read(self, store, op, fetch):
            fetched.append(fetch())

    store = store_factory(plugins=[Peeks()])
    user = new_user(store)
    assert store.users.get(user.id) == user
    assert fetched[-1]["id"] == user.id


# ----------------------------------------------------------------------------- users' data


class Notes:
    """A plugin keeping notes about users in its own table."""

    @clonestore.hookimpl
    def clonestore_tables(self):
        return [NOTES]

    @clonestore.hookimpl
    def clonestore_export_user(self, store, user_id):
        rows = store.backend.select(NOTES, clonestore.query.Cond("user_id", "eq", user_id))
        return {"notes": [row["body"] for row in rows]}

    @clonestore.hookimpl
    def clonestore_erase_user(self, store, user_id):
        assert store.users._get_row(user_id) is not None, "runs before the user is removed"
        store.backend.delete(NOTES, clonestore.query.Cond("user_id", "eq", user_id))


def test_clonestore_export_user(store_factory):
    """Sections a plugin returns from export_user appear in store.export_user()."""
    store = store_factory(plugins=[Notes()])
    user = new_user(store)
    other = new_user(store)
    for owner, body in ((user, "likes jazz"), (other, "not yours"), (user, "lives in Oslo")):
        store.backend.insert(NOTES, {"id": _uuid(), "user_id": owner.id, "body": body})
    export = json.loads(json.dumps(store.export_user(user.id)))
    assert sorted(export["notes"]) == ["likes jazz", "lives in Oslo"]
    assert export["user"]["id"] == user.id


def test_clonestore_erase_user(store_factory):
    """erase_user lets a plugin remove its data inside the erasure; if it fails, nothing
    is erased."""
    store = store_factory(plugins=[Notes()])
    user = new_user(store)
    store.backend.insert(NOTES, {"id": _uuid(), "user_id": user.id, "body": "secret"})
    store.erase_user(user.id)
    assert store.backend.count(NOTES, TRUE) == 0
    assert store.users.get_or_none(user.id) is None

    class Fails:
        @clonestore.hookimpl
        def clonestore_erase_user(self, store, user_id):
            raise ClonestoreError("cannot erase now")

    failing = store_factory(plugins=[Notes(), Fails()])
    victim = new_user(failing)
    new_document(failing, victim)
    refused(failing, lambda: failing.erase_user(victim.id), ClonestoreError)
