"""The Studio through Starlette's TestClient on every backend: pages, keyset paging and
filters, timelines, the audit status, statistics, read-only by default, edits as the
Studio actor, the token gate, and the command's bind rules."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

import clonestore
from clonestore._demo import demo_email, seed_demo
from clonestore.cli._common import StoreOptions
from clonestore.cli.studio import is_loopback, open_studio_store
from clonestore.studio import REPOSITORIES, STUDIO_ACTOR, allowed_host_names, create_app

from .conftest import Run
from .test_commands import _tamper

PLUGINS = ["cache", "ratelimit", "audit"]


@pytest.fixture
def seeded(keeper: clonestore.Store, cli_url: str) -> Iterator[clonestore.Store]:
    """A store with the feature plugins over 12 demo users."""
    with clonestore.open(cli_url, plugins=PLUGINS) as store:
        seed_demo(store, 12, dimensions=8)
        yield store


#: Where the test client says it is: the Studio's own address, as a browser on it sends.
OWN = "http://127.0.0.1"


def _client(store: clonestore.Store, **options: object) -> TestClient:
    """A client on the Studio's own origin (Host 127.0.0.1, same-origin forms)."""
    return TestClient(create_app(store, **options), base_url=OWN, headers={"origin": OWN})


def _ids(html: str, table: str) -> list[str]:
    return re.findall(rf'href="/t/{table}/([0-9a-f-]{{36}})"', html)


def test_every_page_renders(seeded: clonestore.Store) -> None:
    """The overview, every repository's table, a record of each, the audit trail, the
    statistics and the metrics page answer 200 with the store's data."""
    client = _client(seeded)
    index = client.get("/")
    assert index.status_code == 200
    assert f'<div class="n">{seeded.users.count()}</div>' in index.text
    for name in REPOSITORIES:
        table = client.get(f"/t/{name}")
        assert table.status_code == 200, name
        first = _ids(table.text, name)
        assert first, name
        record = client.get(f"/t/{name}/{first[0]}")
        assert record.status_code == 200, name
        assert first[0] in record.text
    audit = client.get("/audit")
    assert audit.status_code == 200
    assert 'id="chain">intact' in audit.text
    stats = client.get("/stats")
    assert 'id="cache-stats"' in stats.text
    assert client.get("/metrics").status_code == 200
    assert client.get("/t/nosuch").status_code == 404


def test_tables_page_by_keyset_and_filter(seeded: clonestore.Store) -> None:
    """Following next-page links walks every row once; filters give what the repository's
    lookups give; a bad filter is a 400 naming the field."""
    client = _client(seeded)
    seen: list[str] = []
    url = "/t/users?size=10&order=email"
    pages = 0
    while url:
        page = client.get(url)
        assert page.status_code == 200
        seen += [i for i in _ids(page.text, "users") if i not in seen]
        found = re.search(r'href="(\?[^"]*cursor=[^"]*)" id="next"', page.text)
        url = "/t/users" + found.group(1).replace("&amp;", "&") if found else ""
        pages += 1
    assert pages == 2
    everyone = seeded.users.find_many(order_by="email")
    assert seen == [u.id for u in everyone]
    pro = client.get("/t/users?subscription_tier=pro&size=100")
    assert sorted(set(_ids(pro.text, "users"))) == sorted(
        u.id for u in seeded.users.find_many(where={"subscription_tier": "pro"}))
    built = client.get("/t/turns?_field=llm_latency_ms&_op=gte&_value=1000&size=100")
    assert f"({seeded.turns.count({'llm_latency_ms__gte': 1000})} matching)" in built.text
    bad = client.get("/t/turns?llm_latency_ms__gte=soon")
    assert bad.status_code == 400
    assert "llm_latency_ms" in bad.text


def test_a_session_shows_its_timeline_with_latency_and_cost(seeded: clonestore.Store) -> None:
    """A session's page lists its turns in order with each stage's latency bar and cost."""
    user = seeded.users.find_by_email(demo_email(0))
    assert user is not None
    session = seeded.sessions.find_many(where={"user_id": user.id})[0]
    turns = seeded.turns.find_many(where={"session_id": session.id}, order_by="turn_index")
    page = _client(seeded).get(f"/t/sessions/{session.id}").text
    assert f"Timeline <span class=\"muted\">({len(turns)} turns)" in page
    for turn in turns:
        assert f"{turn.latency_ms} ms" in page
        assert f"${turn.cost}" in page
        assert f"<title>llm {turn.llm_latency_ms} ms</title>" in page
    user_page = _client(seeded).get(f"/t/users/{user.id}").text
    assert session.id in user_page  # the user's related sessions


def test_the_audit_page_shows_a_broken_chain(seeded: clonestore.Store) -> None:
    """Once an audit row is changed behind the plugin, the audit page says where it breaks."""
    owner = seeded.users.find_by_email(demo_email(0))
    assert owner is not None
    _tamper(seeded, owner.id, 3)  # one chain per owner: the first demo user's third entry
    page = _client(seeded).get("/audit").text
    assert 'id="chain">BROKEN at seq 3' in page


def test_no_write_is_possible_without_allow_edit(seeded: clonestore.Store, cli_url: str) -> None:
    """Read-only: the app has no write route (POST is 405/404, data unchanged), and the store
    `clonestore studio` opens without --allow-edit refuses every write."""
    user = seeded.users.find_by_email(demo_email(0))
    assert user is not None
    client = _client(seeded)
    assert client.post(f"/t/users/{user.id}", data={"field.name": "X"}).status_code == 405
    for action in ("edit", "delete", "restore"):
        answer = client.post(f"/t/users/{user.id}/{action}", data={"field.name": "X"})
        assert answer.status_code == 404
    assert seeded.users.get(user.id).name == user.name
    with open_studio_store(StoreOptions(cli_url, tuple(PLUGINS)), allow_edit=False) as store:
        with pytest.raises(clonestore.ConfigurationError, match="read-only"):
            store.users.update(user.id, name="X")
        with pytest.raises(clonestore.ConfigurationError, match="read-only"):
            store.users.create(email="new@example.com", name="New")
    assert seeded.users.get(user.id).name == user.name
    assert seeded.users.find_by_email("new@example.com") is None


def test_edits_go_through_the_repositories_as_the_studio_actor(
    seeded: clonestore.Store,
) -> None:
    """With allow_edit, a form changes the record through its repository (validated,
    audited as actor 'studio'); a form without the page's token changes nothing."""
    user = seeded.users.find_by_email(demo_email(2))
    assert user is not None
    client = _client(seeded, allow_edit=True)
    page = client.get(f"/t/users/{user.id}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    form = {"csrf": csrf.group(1), "expected_version": str(user.version),
            "field.name": "Renamed in Studio", "field.subscription_tier": "enterprise"}
    saved = client.post(f"/t/users/{user.id}/edit", data=form, follow_redirects=False)
    assert saved.status_code == 303
    changed = seeded.users.get(user.id)
    assert (changed.name, changed.subscription_tier) == ("Renamed in Studio", "enterprise")
    entry = seeded.audit.find(resource_id=user.id, action="user.update")[0]
    assert entry.actor_id == STUDIO_ACTOR
    assert entry.user_agent.startswith("clonestore-studio/")
    invalid = client.post(f"/t/users/{user.id}/edit",
                          data={**form, "expected_version": str(changed.version),
                                "field.email": "not an email"})
    assert invalid.status_code == 400
    assert "email" in invalid.text
    forged = client.post(f"/t/users/{user.id}/edit", data={**form, "csrf": "guess",
                                                           "field.name": "Forged"})
    assert forged.status_code == 400
    assert seeded.users.get(user.id).name == "Renamed in Studio"
    gone = client.post(f"/t/users/{user.id}/delete", data={"csrf": csrf.group(1)})
    assert gone.status_code == 200
    assert seeded.users.get_or_none(user.id) is None


def test_a_token_guards_every_request(seeded: clonestore.Store) -> None:
    """With a token, requests without it are 401; ?token= sets a cookie; Bearer works."""
    client = _client(seeded, token="s3cret-token")
    assert client.get("/").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    entered = client.get("/t/users?token=s3cret-token", follow_redirects=False)
    assert entered.status_code == 303
    assert entered.headers["location"] == "/t/users"
    assert client.get("/t/users").status_code == 200  # the cookie now
    other = _client(seeded, token="s3cret-token")
    assert other.get("/", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_studio_refuses_a_public_bind_without_a_token(run: Run) -> None:
    """`clonestore studio --host 0.0.0.0` without a token exits 1 before serving anything."""
    done = run("studio", "--host", "0.0.0.0", "--port", "1")
    assert done.exit_code == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "refusing to listen on 0.0.0.0 without a token" in lines[0]
    assert "--token" in lines[0]
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost")] == [True] * 3
    assert [is_loopback(h) for h in ("0.0.0.0", "192.0.2.1", "db.example")] == [False] * 3


def test_the_command_serves_the_studio(tmp_path) -> None:
    """`clonestore studio --url sqlite:///... --port P` serves the pages on 127.0.0.1 until
    stopped, read-only (a same-origin POST is 405), refusing foreign hosts (421) and
    posts without an origin (403), answering a name given with --allow-host."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    url = f"sqlite:///{tmp_path / 'studio.db'}"
    with clonestore.open(url) as store:
        seed_demo(store, 2, dimensions=4)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "clonestore.cli", "studio", "--url", url, "--port", str(port),
         "--allow-host", "studio.test"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/t/users", timeout=5) as r:
                    page = r.read().decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.communicate()
                assert time.monotonic() < deadline, "the Studio did not answer"
                time.sleep(0.2)
        assert demo_email(1) in page
        assert "read-only" in page
        own = f"http://127.0.0.1:{port}"
        for headers, code in (({"Origin": own}, 405), ({}, 403),
                              ({"Host": "evil.attacker.example"}, 421)):
            post = urllib.request.Request(f"{own}/t/users", data=b"x=1", headers=headers)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(post, timeout=5)
            assert refused.value.code == code, headers
        named = urllib.request.Request(f"{own}/", headers={"Host": f"studio.test:{port}"})
        with urllib.request.urlopen(named, timeout=5) as answer:
            assert answer.headers["X-Frame-Options"] == "DENY"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert f"Studio on http://127.0.0.1:{port}/" in err


def test_a_foreign_host_is_refused_before_any_page(seeded: clonestore.Store) -> None:
    """DNS rebinding: a request whose Host names another site gets 421 and no data or CSRF
    value (token or not), so a POST under that name cannot edit; a name given in
    allowed_hosts (--allow-host) is answered."""
    user = seeded.users.find_by_email(demo_email(0))
    assert user is not None
    evil = {"host": "evil.attacker.example", "origin": "http://evil.attacker.example"}
    for options in ({"allow_edit": True}, {"allow_edit": True, "token": "s3cret"}):
        client = _client(seeded, **options)
        for path in ("/", "/t/users", f"/t/users/{user.id}", "/audit", "/static/studio.css"):
            page = client.get(path, headers=evil)
            assert page.status_code == 421, path
            assert user.email not in page.text
            assert "csrf" not in page.text
        posted = client.post(f"/t/users/{user.id}/edit", headers=evil,
                             data={"csrf": "x", "field.name": "Rebound"})
        assert posted.status_code == 421
    assert seeded.users.get(user.id).name == user.name
    for host in ("127.0.0.1:8765", "localhost", "[::1]:80"):
        assert _client(seeded).get("/", headers={"host": host}).status_code == 200, host
    named = _client(seeded, allowed_hosts=allowed_host_names("0.0.0.0", ["studio.internal"]))
    assert named.get("/", headers={"host": "studio.internal:8765"}).status_code == 200
    assert named.get("/", headers={"host": "other.internal"}).status_code == 421
    assert allowed_host_names("192.0.2.7") == {"192.0.2.7"}
    assert "localhost" in allowed_host_names("::")


def test_forms_from_another_origin_are_refused(seeded: clonestore.Store) -> None:
    """With allow_edit, a POST whose Origin (or Referer without Origin) is another site,
    or "null", or missing altogether, is 403 and changes nothing; the Studio's own page
    (Origin, or Referer alone) is accepted."""
    user = seeded.users.find_by_email(demo_email(1))
    assert user is not None
    client = _client(seeded, allow_edit=True)
    page = client.get(f"/t/users/{user.id}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    form = {"csrf": csrf.group(1), "field.name": "Forged"}
    bare = TestClient(client.app, base_url=OWN)
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"},
                    {"origin": "https://127.0.0.1"}, {"origin": "http://127.0.0.1:9"},
                    {"referer": "http://evil.example/page"}, {}):
        answer = bare.post(f"/t/users/{user.id}/edit", data=form, headers=headers)
        assert answer.status_code == 403, headers
        assert "own pages" in answer.text
        assert bare.post(f"/t/users/{user.id}/delete", data=form,
                         headers=headers).status_code == 403
    assert seeded.users.get(user.id).name == user.name
    referred = bare.post(f"/t/users/{user.id}/edit", data={**form, "field.name": "Mine"},
                         headers={"referer": f"{OWN}/t/users/{user.id}"}, follow_redirects=False)
    assert referred.status_code == 303
    assert seeded.users.get(user.id).name == "Mine"


def test_every_answer_carries_the_security_headers(seeded: clonestore.Store) -> None:
    """Pages, errors and refusals say DENY to framing, a CSP with frame-ancestors 'none' and
    default-src 'self', a same-origin Referrer-Policy and no-store; the pages hold no inline
    style or script (the CSP would block them), and the style sheet is served and cacheable."""
    user = seeded.users.find_by_email(demo_email(0))
    assert user is not None
    session = seeded.sessions.find_many(where={"user_id": user.id})[0]
    client = _client(seeded, allow_edit=True)
    paths = ["/", "/t/users", f"/t/users/{user.id}", f"/t/sessions/{session.id}", "/audit",
             "/stats", "/metrics", "/t/nosuch", "/metrics/prometheus"]
    answers = [client.get(path) for path in paths]
    answers.append(client.get("/", headers={"host": "evil.example"}))
    for path, answer in zip([*paths, "foreign host"], answers, strict=True):
        headers = answer.headers
        assert headers["x-frame-options"] == "DENY", path
        policy = [part.strip() for part in headers["content-security-policy"].split(";")]
        assert "frame-ancestors 'none'" in policy, path
        assert "default-src 'self'" in policy, path
        assert headers["referrer-policy"] == "same-origin", path
        assert headers["cache-control"] == "no-store", path
        assert not re.search(r"<script|<style|\sstyle=|\son[a-z]+=", answer.text), path
    sheet = client.get("/static/studio.css")
    assert sheet.status_code == 200
    assert ".bar" in sheet.text
    assert "no-store" not in sheet.headers.get("cache-control", "")
    assert sheet.headers["x-content-type-options"] == "nosniff"


def test_bad_form_input_is_a_400_with_a_message(seeded: clonestore.Store) -> None:
    """Deeply nested JSON, JSON too deep to store, or a version that is no number, in the
    edit form is a 400 that says what is wrong, and nothing changes."""
    user = seeded.users.find_by_email(demo_email(3))
    assert user is not None
    client = _client(seeded, allow_edit=True)
    page = client.get(f"/t/users/{user.id}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    for depth in (100_000, 900):
        nested = "[" * depth + "]" * depth
        answer = client.post(f"/t/users/{user.id}/edit",
                             data={"csrf": csrf.group(1), "field.settings": nested})
        assert answer.status_code == 400, depth
        assert "settings" in answer.text
        assert "deep" in answer.text
    answer = client.post(f"/t/users/{user.id}/edit",
                         data={"csrf": csrf.group(1), "expected_version": "many"})
    assert answer.status_code == 400
    assert seeded.users.get(user.id).version == user.version
