"""A Starlette app on ``clonestore.open_async``: users, sessions and turns over HTTP.

Run it (any ASGI server; uvicorn comes with ``clonestore[studio]``)::

    CLONESTORE_URL=sqlite:///clones.db uvicorn app:app

Every request awaits the store, so one process serves many at once without a
thread per request. The store is opened when the app starts and closed when
it stops (Starlette's lifespan). Errors map to HTTP statuses in one place.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import clonestore

STATUS = {
    clonestore.NotFound: 404,
    clonestore.AlreadyExists: 409,
    clonestore.Conflict: 409,
    clonestore.InvalidTransition: 409,
    clonestore.ValidationError: 422,
    clonestore.RateLimited: 429,
    clonestore.StorageUnavailable: 503,
}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact, as stored
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _json(record: Any) -> dict[str, Any]:
    data = attrs.asdict(record, recurse=False) if attrs.has(type(record)) else dict(record)
    return {k: _plain(v) for k, v in data.items()}


def _response(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(_json(value), status_code=status, media_type="application/json")


def _store(request: Request) -> clonestore.AsyncStore:
    store: clonestore.AsyncStore = request.app.state.store
    return store


async def create_user(request: Request) -> JSONResponse:
    body = await request.json()
    async with _store(request).context(request_id=request.headers.get("x-request-id")):
        user = await _store(request).users.create(email=body.get("email"), name=body.get("name"))
    return _response(user, 201)


async def get_user(request: Request) -> JSONResponse:
    return _response(await _store(request).users.get(request.path_params["user_id"]))


async def start_session(request: Request) -> JSONResponse:
    body = await request.json()
    store = _store(request)
    session = await store.for_user(body.get("user_id")).sessions.create()
    return _response(session, 201)


async def add_turn(request: Request) -> JSONResponse:
    body = await request.json()
    store = _store(request)
    session_id = request.path_params["session_id"]
    async with store.transaction():  # the turn and the state change, all or nothing
        turn = await store.sessions.add_turn(
            session_id,
            user_transcript=body.get("user_transcript", ""),
            llm_response=body.get("llm_response", ""),
            asr_latency_ms=body.get("asr_latency_ms", 0),
            llm_cost=Decimal(str(body.get("llm_cost", "0"))),
        )
        if body.get("state"):
            await store.sessions.update_state(session_id, body["state"])
    return _response(turn, 201)


async def get_session(request: Request) -> JSONResponse:
    found = await _store(request).sessions.get_with_turns(request.path_params["session_id"])
    out = _json(found.session)
    out["turns"] = [_json(turn) for turn in found.turns]
    return JSONResponse(out)


async def health(request: Request) -> JSONResponse:
    report = await _store(request).health()
    return JSONResponse(report, status_code=200 if report["ok"] else 503)


async def clonestore_error(request: Request, exc: Exception) -> JSONResponse:
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 500)
    return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)


def create_app(
    url: str | None = None, *, store: clonestore.AsyncStore | None = None, **options: Any
) -> Starlette:
    """The app, on the store at ``url`` (default ``$CLONESTORE_URL``, else SQLite), opened
    and closed with the app; or on an open ``store`` (tests), which stays open."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if store is not None:
            app.state.store = store
            yield
            return
        async with clonestore.open_async(url or os.environ.get("CLONESTORE_URL"), **options) as s:
            app.state.store = s
            yield

    return Starlette(
        routes=[
            Route("/users", create_user, methods=["POST"]),
            Route("/users/{user_id}", get_user),
            Route("/sessions", start_session, methods=["POST"]),
            Route("/sessions/{session_id}", get_session),
            Route("/sessions/{session_id}/turns", add_turn, methods=["POST"]),
            Route("/health", health),
        ],
        exception_handlers={clonestore.ClonestoreError: clonestore_error},
        lifespan=lifespan,
    )


app = create_app()
