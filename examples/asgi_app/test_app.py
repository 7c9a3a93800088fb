"""The example app over HTTP, through httpx's ASGI transport: ``pytest examples/asgi_app``
(``--clonestore-url=URL`` picks the backend; default memory://)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from app import create_app

import clonestore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(
    clonestore_async_store: clonestore.AsyncStore,
) -> AsyncIterator[httpx.AsyncClient]:
    # The pytest plugin's AsyncStore (tables emptied, closed after the test) serves the app.
    app = create_app(store=clonestore_async_store)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


def _email() -> str:
    return f"{uuid.uuid4().hex[:12]}@example.com"


async def test_users_round_trip_and_errors_map_to_statuses(client: httpx.AsyncClient) -> None:
    """A created user reads back; unknown is 404, invalid 422, a taken email 409."""
    email = _email()
    created = await client.post("/users", json={"email": email, "name": "Ada"})
    assert created.status_code == 201, created.text
    user = created.json()
    assert (await client.get(f"/users/{user['id']}")).json() == user
    assert (await client.get(f"/users/{uuid.uuid4()}")).status_code == 404
    assert (await client.post("/users", json={"email": "nope", "name": "X"})).status_code == 422
    taken = await client.post("/users", json={"email": email, "name": "Twin"})
    assert taken.status_code == 409


async def test_concurrent_turns_are_all_counted(client: httpx.AsyncClient) -> None:
    """Twenty turns posted at once all land, and the session's totals add up exactly."""
    user = (await client.post("/users", json={"email": _email(), "name": "Bo"})).json()
    session = (await client.post("/sessions", json={"user_id": user["id"]})).json()
    posts = [
        client.post(
            f"/sessions/{session['id']}/turns",
            json={"user_transcript": f"hi {i}", "asr_latency_ms": 10, "llm_cost": "0.000100"},
        )
        for i in range(20)
    ]
    assert {r.status_code for r in await asyncio.gather(*posts)} == {201}
    found = (await client.get(f"/sessions/{session['id']}")).json()
    assert found["total_turns"] == 20
    assert found["total_latency_ms"] == 200
    assert found["total_cost"] == "0.002000"
    assert sorted(t["turn_index"] for t in found["turns"]) == list(range(1, 21))


async def test_a_refused_state_change_rolls_the_turn_back(client: httpx.AsyncClient) -> None:
    """A turn whose state change is refused (409) is not stored: the transaction rolled back."""
    user = (await client.post("/users", json={"email": _email(), "name": "Cy"})).json()
    session = (await client.post("/sessions", json={"user_id": user["id"]})).json()
    refused = await client.post(
        f"/sessions/{session['id']}/turns", json={"user_transcript": "x", "state": "speaking"}
    )
    assert refused.status_code == 409, refused.text
    found = (await client.get(f"/sessions/{session['id']}")).json()
    assert found["total_turns"] == 0
    assert found["turns"] == []


async def test_health_reports_the_backend(client: httpx.AsyncClient) -> None:
    """/health is the store's health report."""
    report = (await client.get("/health")).json()
    assert report["ok"] is True
    assert report["backend"] in ("memory", "sqlite", "postgresql", "mariadb")


async def test_the_app_opens_and_closes_its_own_store(clonestore_url: str) -> None:
    """Given a URL, the app opens an AsyncStore when it starts and closes it when it stops."""
    app = create_app(clonestore_url)
    async with app.router.lifespan_context(app):
        store = app.state.store
        assert (await store.health())["ok"]
    assert store.closed


async def test_the_plugins_async_store_fixture(
    clonestore_async_store: clonestore.AsyncStore,
) -> None:
    """The pytest plugin's clonestore_async_store is an open AsyncStore with empty tables."""
    assert await clonestore_async_store.users.count() == 0
    user = await clonestore_async_store.users.create(email=_email(), name="Fixture")
    assert await clonestore_async_store.users.get(user.id) == user
