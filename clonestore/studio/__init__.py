"""The clonestore Studio: browse (and, when allowed, edit) a store in the browser.

A Starlette app rendered on the server with Jinja2 templates (no build step),
over the store's public API only: every repository as a table with keyset
pages and filters, each record with its related rows, sessions as timelines
of per-stage latency and cost, the audit trail with its verification status,
cache and rate-limit statistics, and the metrics plugin's numbers. Run it with
``clonestore studio --url URL``, or mount :func:`create_app` in an ASGI server.

Needs the ``studio`` extra (starlette, jinja2, uvicorn).
"""

from __future__ import annotations

from clonestore.studio._app import REPOSITORIES, STUDIO_ACTOR, create_app
from clonestore.studio._guard import ReadOnly
from clonestore.studio._security import allowed_host_names

__all__ = ["REPOSITORIES", "STUDIO_ACTOR", "ReadOnly", "allowed_host_names", "create_app"]
