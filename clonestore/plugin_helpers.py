"""What a plugin calls from its hooks (:mod:`clonestore.hookspecs`), besides the store.

* :func:`open_shared_store`: the store a ``clonestore_shared_stores`` hook offers for a URL
  (the cache's L2, the rate limiter's counters);
* :func:`current_context`: the :class:`~clonestore.Context` of the operation under way
  (who acts, for whom), as a backend or service reads it;
* :func:`acting_user`: the user whose ``store.for_user`` view made the backend call under
  way, as a backend with capability ``row_security`` reads it;
* :func:`refused_scheme`: mark a ``clonestore_backends`` factory that only refuses its
  scheme (``mysql://``), and :func:`refuses_scheme` to ask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clonestore._operations import acting_user, current_context
from clonestore.errors import ConfigurationError
from clonestore.secrets import redact_url
from clonestore.spi import BackendFactory

__all__ = [
    "acting_user",
    "current_context",
    "open_shared_store",
    "refused_scheme",
    "refuses_scheme",
]


def open_shared_store(hook: Any, kind: str, url: str, protocol: type[Any]) -> Any:
    """Open the shared store for ``url`` that serves ``kind``: the first factory
    offered for the URL's scheme through ``clonestore_shared_stores``.

    :param hook: the store's hook relay (``store.hook``).
    :param protocol: a runtime-checkable protocol the result must implement.
    :raises ConfigurationError: no plugin serves the scheme, or its object does
        not implement ``protocol``.
    """
    scheme = url.partition("://")[0]
    offered: dict[str, Callable[..., Any]] = {}
    for stores in hook.clonestore_shared_stores(kind=kind):
        for name, factory in (stores or {}).items():
            offered.setdefault(name, factory)
    if scheme not in offered:
        known = ", ".join(f"{s}://" for s in sorted(offered)) or "none installed"
        raise ConfigurationError(
            f"no {kind} store for {redact_url(url)!r}; known schemes: {known}"
        )
    opened = offered[scheme](url)
    if not isinstance(opened, protocol):
        raise ConfigurationError(
            f"the {scheme}:// {kind} store does not implement {protocol.__name__}"
        )
    return opened


def refused_scheme(factory: BackendFactory) -> BackendFactory:
    """Mark a backend factory that only refuses its scheme (raising a
    ``ConfigurationError`` that says what to use instead, as ``mysql://`` does): error
    messages that list the known schemes leave its scheme out."""
    factory.__dict__["clonestore_refused_scheme"] = True
    return factory


def refuses_scheme(factory: BackendFactory) -> bool:
    """Whether ``factory`` was marked with :func:`refused_scheme`."""
    return bool(getattr(factory, "__dict__", {}).get("clonestore_refused_scheme"))
