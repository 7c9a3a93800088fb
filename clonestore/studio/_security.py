"""The Studio's outer wall: which Host and Origin it answers, and the headers every
answer carries.

Runs as plain ASGI middleware in front of everything else (the token gate, the
routes), so a refused request reaches no handler:

- **Host** (against DNS rebinding): a request whose ``Host`` names neither the
  address the Studio is bound to nor a name allowed with ``--allow-host`` is
  answered ``421 Misdirected Request``. A page served under an attacker's name
  would give that origin the CSRF value and the data.
- **Origin** (against cross-site posts): a ``POST`` whose ``Origin`` (or, when a
  browser sent none, whose ``Referer``) is not the Studio's own origin is
  answered ``403``; one with neither is refused too.
- **Headers**: ``X-Frame-Options: DENY`` and a Content-Security-Policy with
  ``frame-ancestors 'none'`` (no framing of the edit forms), ``default-src
  'self'`` (no inline script or style runs; the styles are a static file),
  ``Referrer-Policy: same-origin`` (record ids in URLs stay home),
  ``X-Content-Type-Options: nosniff``, and ``Cache-Control: no-store`` on every
  answer but the static style sheet, so data pages stay out of caches.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["LOOPBACK_NAMES", "HostAndOriginGuard", "allowed_host_names"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The names a Studio bound to a loopback or wildcard address answers besides its own.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
#: Where the static style sheet is served; the only answers a cache may keep.
STATIC_PREFIX = "/static/"

_CSP = ("default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
        "object-src 'none'")
_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", _CSP.encode()),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
]
_NO_STORE = (b"cache-control", b"no-store")


def _bare(host: str) -> str:
    """A host name without brackets or trailing dot, lower case (``[::1]`` -> ``::1``)."""
    return host.strip().strip("[]").rstrip(".").lower()


def allowed_host_names(bound: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The ``Host`` names a Studio bound to ``bound`` answers: that address, the loopback
    names when it is a loopback or wildcard address (``0.0.0.0``, ``::``), and ``extra``
    (``--allow-host``)."""
    names = {_bare(bound), *(_bare(name) for name in extra)}
    try:
        address = ipaddress.ip_address(_bare(bound))
    except ValueError:
        loopback = _bare(bound) == "localhost"
    else:
        loopback = address.is_loopback or address.is_unspecified
    if loopback:
        names.update(LOOPBACK_NAMES)
    return frozenset(names)


def _host_name(authority: str) -> str:
    """The name part of a ``Host`` value (``example:8765`` -> ``example``,
    ``[::1]:80`` -> ``::1``)."""
    if authority.startswith("["):
        return _bare(authority.partition("]")[0])
    if authority.count(":") == 1:
        authority = authority.partition(":")[0]
    return _bare(authority)


class HostAndOriginGuard:
    """ASGI middleware: refuses foreign ``Host`` names (421) and cross-origin ``POST``s
    (403) before the app sees them, and adds the security headers to every answer."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        self.allowed = frozenset(_bare(name) for name in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(_HEADERS)
                if not path.startswith(STATIC_PREFIX):
                    extra.append(_NO_STORE)
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in extra if h[0] not in names)]
            await send(message)

        if _host_name(host) not in self.allowed:
            await _refuse(send_with_headers, 421,
                          f"clonestore Studio: this Studio does not answer to the host "
                          f"{host[:100]!r} (start it with --allow-host NAME to allow a name)")
            return
        if scope["method"] == "POST" and not self._same_origin(headers, scope, host):
            await _refuse(send_with_headers, 403,
                          "clonestore Studio: a form may only be posted from the Studio's own "
                          "pages (the Origin or Referer names another site, or is missing)")
            return
        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _same_origin(headers: dict[str, str], scope: Scope, host: str) -> bool:
        """Whether the post's ``Origin`` (else its ``Referer``) is this Studio's origin:
        the scheme it is served over and the ``Host`` the request was sent to."""
        source = headers.get("origin") or headers.get("referer")
        if not source or source == "null":
            return False
        parts = urlsplit(source)
        return parts.scheme == scope.get("scheme", "http") and parts.netloc.lower() == host.lower()


async def _refuse(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
