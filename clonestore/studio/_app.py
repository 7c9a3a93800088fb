"""The Studio's Starlette application: pages over the store's public API."""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import attrs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

import clonestore
from clonestore._store import Store
from clonestore.errors import ClonestoreError, NotFound, ValidationError
from clonestore.records import to_json
from clonestore.repositories import CATALOGUES
from clonestore.repositories import REPOSITORIES as DOMAIN_REPOSITORIES
from clonestore.secrets import redact_url
from clonestore.studio._security import LOOPBACK_NAMES, STATIC_PREFIX, HostAndOriginGuard
from clonestore.studio._values import RESERVED, display, form_text, parse_filters, parse_value

__all__ = ["REPOSITORIES", "STUDIO_ACTOR", "create_app"]

#: The repositories the Studio browses, in the order of its navigation: every one
#: the store has (the users' domain, then catalogues such as specializations).
REPOSITORIES = (*DOMAIN_REPOSITORIES, *CATALOGUES)
#: The actor edits made in the Studio are attributed to (``store.context(actor_id=...)``).
STUDIO_ACTOR = "studio"
#: Related rows shown on a record's page: repository -> [(title, repository, field)].
_CHILDREN: dict[str, list[tuple[str, str, str]]] = {
    "users": [
        ("Voice models", "voice_models", "user_id"),
        ("Face models", "face_models", "user_id"),
        ("Sessions", "sessions", "user_id"),
        ("Documents", "documents", "user_id"),
        ("Memories", "memories", "user_id"),
    ],
    "sessions": [("Memories from this session", "memories", "session_id")],
}
#: Fields holding the id of a row of another repository.
_REFERENCES = {
    "user_id": "users",
    "session_id": "sessions",
    "voice_model_id": "voice_models",
    "face_model_id": "face_models",
}
_RELATED_LIMIT = 20
_FILTER_OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "startswith", "contains",
                     "overlap", "isnull")
_PAGE_SIZES = (10, 25, 50, 100)
_COOKIE = "clonestore_studio_token"
_TEMPLATES = Path(__file__).with_name("templates")
_STATIC = Path(__file__).with_name("static")


@attrs.frozen
class _Settings:
    store: Store
    allow_edit: bool
    token: str | None
    csrf: str
    templates: Jinja2Templates


def _settings(request: Request) -> _Settings:
    settings: _Settings = request.app.state.studio
    return settings


class _TokenGate(BaseHTTPMiddleware):
    """With a token set, every request carries it: ``Authorization: Bearer``, the cookie
    set by a first visit with ``?token=``, or that query parameter itself."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    def _matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        header = request.headers.get("authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        if self._matches(bearer) or self._matches(request.cookies.get(_COOKIE)):
            return await call_next(request)
        if self._matches(request.query_params.get("token")):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(_COOKIE, self.token, httponly=True, samesite="strict")
            return response
        return PlainTextResponse(
            "clonestore Studio: a token is required (open the URL the command printed)",
            status_code=401,
        )


def _repo(store: Store, name: str) -> Any:
    if name not in REPOSITORIES:
        raise NotFound(f"no repository {name!r}; the Studio shows {', '.join(REPOSITORIES)}")
    return getattr(store, name)


def _render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    settings = _settings(request)
    return settings.templates.TemplateResponse(
        request,
        template,
        {
            "repositories": REPOSITORIES,
            "allow_edit": settings.allow_edit,
            "csrf": settings.csrf,
            "store_url": redact_url(settings.store.url),
            "version": clonestore.__version__,
            "services": set(settings.store.services),
            **context,
        },
        status_code=status_code,
    )


def _error_page(request: Request, error: ClonestoreError) -> Response:
    status = 404 if isinstance(error, NotFound) else 400
    return _render(request, "error.html", status_code=status, error=error,
                   kind=type(error).__name__)


_SYSTEM = ("created_at", "updated_at", "version", "deleted_at")
#: Long fields a table page leaves to the record's page.
_LONG = frozenset({"user_transcript", "llm_response", "text_content", "vector_ids", "metadata",
                   "settings", "sample_paths", "reference_image_paths", "embedding"})


def _columns(spec: Any, deleted: bool) -> list[str]:
    """A table page's columns: id, the domain's short fields, then when it was made."""
    names = [c.name for c in spec.columns
             if c.derived_from is None and c.name != "deleted_by_cascade"]
    domain = [n for n in names if n != "id" and n not in _SYSTEM and n not in _LONG]
    return ["id", *domain, "created_at", *(["deleted_at"] if deleted else [])]


def _index(request: Request) -> Response:
    store = _settings(request).store
    try:
        counts = {name: _repo(store, name).count() for name in REPOSITORIES}
    except ClonestoreError as error:
        return _error_page(request, error)
    return _render(request, "index.html", counts=counts, health=store.health())


def _table(request: Request) -> Response:
    store = _settings(request).store
    name = request.path_params["table"]
    try:
        repo = _repo(store, name)
        spec = store.tables[name]
        params = _with_new_filter(request.query_params.multi_items())
        where = parse_filters(spec, params)
        size = int(request.query_params.get("size", "25"))
        if size not in _PAGE_SIZES:
            raise ValidationError(f"must be one of {_PAGE_SIZES}", field="size")
        order = request.query_params.get("order") or "-created_at"
        deleted = request.query_params.get("deleted") == "1" and spec.soft_delete
        page = repo.page(where=where, order_by=order, size=size,
                         cursor=request.query_params.get("cursor") or None, with_deleted=deleted)
        total = repo.count(where=where, with_deleted=deleted)
    except (ClonestoreError, ValueError) as error:
        if not isinstance(error, ClonestoreError):
            error = ValidationError(str(error), field="size")
        return _error_page(request, error)
    keep = [(k, v) for k, v in params if k != "cursor" and v != ""]
    next_url = None
    if page.next_cursor is not None:
        next_url = f"?{urlencode([*keep, ('cursor', page.next_cursor)])}"
    filters = {k: v for k, v in params if k not in RESERVED}
    return _render(
        request,
        "table.html",
        table=name,
        spec=spec,
        columns=_columns(spec, deleted),
        fields=[c.name for c in spec.columns if c.derived_from is None],
        operators=_FILTER_OPERATORS,
        rows=page.items,
        total=total,
        next_url=next_url,
        first_url=f"?{urlencode(keep)}" if request.query_params.get("cursor") else None,
        filters=filters,
        order=order,
        size=size,
        sizes=_PAGE_SIZES,
        deleted=deleted,
        references=_REFERENCES,
        display=display,
    )


def _with_new_filter(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The query with the filter form's ``_field``, ``_op`` and ``_value`` as one lookup."""
    form = dict(params)
    kept = [(k, v) for k, v in params if k not in ("_field", "_op", "_value")]
    if form.get("_field") and form.get("_value", "") != "":
        op = form.get("_op") or "eq"
        key = form["_field"] if op == "eq" else f"{form['_field']}__{op}"
        kept = [(k, v) for k, v in kept if k != key] + [(key, form["_value"])]
    return kept


def _timeline(turns: list[Any]) -> dict[str, Any]:
    stages = ("asr", "rag", "llm", "tts")
    longest = max((t.latency_ms for t in turns), default=0) or 1
    rows = []
    for turn in turns:
        segments, start = [], 0.0
        for stage in stages:
            ms = getattr(turn, f"{stage}_latency_ms")
            segments.append((stage, ms, start, 100.0 * ms / longest))
            start += 100.0 * ms / longest
        rows.append({"turn": turn, "segments": segments})
    count = len(turns) or 1
    means = {s: sum(getattr(t, f"{s}_latency_ms") for t in turns) / count for s in stages}
    costs = {s: sum((getattr(t, f"{s}_cost") for t in turns if s != "rag"), start=0)
             for s in ("asr", "llm", "tts")}
    return {"rows": rows, "stages": stages, "means": means, "costs": costs}


def _record(request: Request) -> Response:
    settings = _settings(request)
    store = settings.store
    name, record_id = request.path_params["table"], request.path_params["id"]
    try:
        repo = _repo(store, name)
        spec = store.tables[name]
        found = repo.find_many(where={"id": record_id}, with_deleted=spec.soft_delete, limit=1)
        if not found:
            raise NotFound(f"no {name[:-1].replace('_', ' ')} with id {record_id}")
        item = found[0]
        related = [
            (title, child, getattr(store, child).find_many(
                where={field: record_id}, order_by="-created_at", limit=_RELATED_LIMIT))
            for title, child, field in _CHILDREN.get(name, [])
        ]
        timeline = None
        if name == "sessions":
            turns = store.turns.find_many(where={"session_id": record_id}, order_by="turn_index")
            timeline = _timeline(turns)
        extras: dict[str, Any] = {}
        if name == "users" and "ratelimit" in store.services:
            extras["usage"] = to_json(store.ratelimit.usage(record_id))
        if "audit" in store.services:
            extras["audit"] = store.audit.find(resource_id=record_id, limit=_RELATED_LIMIT)
    except ClonestoreError as error:
        return _error_page(request, error)
    fields = [c for c in spec.columns if c.derived_from is None and c.name != "deleted_by_cascade"]
    editable = [c for c in fields if c.settable == "yes"] if settings.allow_edit else []
    return _render(
        request, "record.html", table=name, item=item, fields=fields, editable=editable,
        related=related, timeline=timeline, references=_REFERENCES, display=display,
        form_text=form_text, soft_delete=spec.soft_delete, **extras,
    )


def _audit(request: Request) -> Response:
    store = _settings(request).store
    if "audit" not in store.services:
        return _render(request, "audit.html", enabled=False)
    try:
        offset = max(0, int(request.query_params.get("offset", "0")))
        action = request.query_params.get("action") or None
        entries = store.audit.find(limit=50, offset=offset, action=action)
        report = store.audit.verify()
    except (ClonestoreError, ValueError) as error:
        if not isinstance(error, ClonestoreError):
            error = ValidationError(str(error), field="offset")
        return _error_page(request, error)
    return _render(request, "audit.html", enabled=True, entries=entries, report=report,
                   offset=offset, action=action or "", display=display)


def _stats(request: Request) -> Response:
    store = _settings(request).store
    try:
        cache = store.cache.stats() if "cache" in store.services else None
        limits = None
        if "ratelimit" in store.services:
            user_id = request.query_params.get("user_id") or None
            limits = {
                "config": to_json(store.ratelimit.config),
                "user_id": user_id,
                "usage": to_json(store.ratelimit.usage(user_id)) if user_id else None,
            }
    except ClonestoreError as error:
        return _error_page(request, error)
    return _render(request, "stats.html", cache=cache, limits=limits, health=store.health())


def _metrics_page(request: Request) -> Response:
    store = _settings(request).store
    metrics = store.services.get("metrics")
    if metrics is None:
        return _render(request, "metrics.html", enabled=False)
    return _render(request, "metrics.html", enabled=True, summary=metrics.summary(),
                   exposition=metrics.exposition().decode())


def _metrics_text(request: Request) -> Response:
    store = _settings(request).store
    metrics = store.services.get("metrics")
    if metrics is None:
        return PlainTextResponse("the metrics plugin is not enabled\n", status_code=404)
    body, content_type = metrics.exposition(), metrics.content_type
    return Response(body, media_type=content_type)


# ---------------------------------------------------------------------------- edits


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    form = dict(parse_qsl(body, keep_blank_values=True))
    if not hmac.compare_digest(form.get("csrf", "").encode(), _settings(request).csrf.encode()):
        raise ValidationError("the form is stale or from elsewhere; reload the page", field="csrf")
    return form


def _as_studio(request: Request, work: Callable[[], Any]) -> Any:
    store = _settings(request).store
    client = request.client.host if request.client is not None else None
    with store.context(actor_id=STUDIO_ACTOR, ip_address=client,
                       user_agent=f"clonestore-studio/{clonestore.__version__}",
                       request_id=f"studio-{uuid.uuid4()}"):
        return work()


async def _edit(request: Request) -> Response:
    store = _settings(request).store
    name, record_id = request.path_params["table"], request.path_params["id"]
    try:
        form = await _form(request)
        repo = _repo(store, name)
        spec = store.tables[name]
        changes = {}
        for column in spec.columns:
            if column.settable == "yes" and f"field.{column.name}" in form:
                changes[column.name] = parse_value(column, form[f"field.{column.name}"])
        version = int(form["expected_version"]) if form.get("expected_version") else None

        def update() -> Any:
            current = repo.get(record_id)
            wanted = {k: v for k, v in changes.items() if form_text(getattr(current, k))
                      != form_text(v)}
            return repo.update(record_id, expected_version=version, **wanted) if wanted else None

        await run_in_threadpool(_as_studio, request, update)
    except (ClonestoreError, ValueError) as error:
        if not isinstance(error, ClonestoreError):
            error = ValidationError(str(error))
        return _error_page(request, error)
    return RedirectResponse(f"/t/{name}/{record_id}", status_code=303)


async def _delete(request: Request) -> Response:
    store = _settings(request).store
    name, record_id = request.path_params["table"], request.path_params["id"]
    restore = request.url.path.endswith("/restore")
    try:
        await _form(request)
        repo = _repo(store, name)
        work = (lambda: repo.restore(record_id)) if restore else (lambda: repo.delete(record_id))
        await run_in_threadpool(_as_studio, request, work)
    except ClonestoreError as error:
        return _error_page(request, error)
    target = f"/t/{name}/{record_id}" if restore or store.tables[name].soft_delete else f"/t/{name}"
    return RedirectResponse(target, status_code=303)


def create_app(
    store: Store,
    *,
    allow_edit: bool = False,
    token: str | None = None,
    allowed_hosts: Iterable[str] = LOOPBACK_NAMES,
) -> Starlette:
    """The Studio as an ASGI app over an open ``store``.

    Read-only unless ``allow_edit``: without it the app has no route that writes
    (a POST is 405). With it, edits go through the repositories (validation,
    plugins, audit) inside ``store.context(actor_id="studio", ...)``, from forms
    carrying a per-app token against cross-site posts. With ``token``, every
    request must present it (see :class:`_TokenGate`).

    Only requests whose ``Host`` names one of ``allowed_hosts`` (loopback names by
    default) are answered, and only same-origin forms are accepted; every answer
    carries framing, content-security and no-store headers (see
    :mod:`clonestore.studio._security`).
    """
    routes: list[Route | Mount] = [
        Route("/", _index),
        Route("/t/{table}", _table),
        Route("/t/{table}/{id}", _record),
        Route("/audit", _audit),
        Route("/stats", _stats),
        Route("/metrics", _metrics_page),
        Route("/metrics/prometheus", _metrics_text),
        Mount(STATIC_PREFIX.rstrip("/"), app=StaticFiles(directory=str(_STATIC)), name="static"),
    ]
    if allow_edit:
        routes += [
            Route("/t/{table}/{id}/edit", _edit, methods=["POST"]),
            Route("/t/{table}/{id}/delete", _delete, methods=["POST"]),
            Route("/t/{table}/{id}/restore", _delete, methods=["POST"]),
        ]
    middleware = [Middleware(HostAndOriginGuard, allowed_hosts=tuple(allowed_hosts))]
    if token:
        middleware.append(Middleware(_TokenGate, token=token))
    app = Starlette(routes=routes, middleware=middleware)
    templates = Jinja2Templates(directory=str(_TEMPLATES))
    app.state.studio = _Settings(store, allow_edit, token, secrets.token_urlsafe(24), templates)
    return app
