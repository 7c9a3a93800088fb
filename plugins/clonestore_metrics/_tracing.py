"""OpenTelemetry spans per call, when ``opentelemetry-api`` is installed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["global_provider_is_set", "make_tracer"]


def make_tracer(tracer_provider: Any = None) -> Any:
    """A tracer named ``clonestore`` from ``tracer_provider`` (default: the global one),
    or None when OpenTelemetry is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    import clonestore

    return trace.get_tracer("clonestore", clonestore.__version__, tracer_provider=tracer_provider)


def global_provider_is_set() -> Callable[[], bool]:
    """A check, cheap enough per call, of whether the application has set a global
    tracer provider: before that every span would be dropped, so none is made. The
    provider is looked up at most once a second until it is set (it is set once)."""
    from opentelemetry import trace

    state = {"set": False, "next": 0.0}

    def is_set() -> bool:
        if state["set"]:
            return True
        now = time.monotonic()
        if now < state["next"]:
            return False
        state["next"] = now + 1.0
        state["set"] = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        return bool(state["set"])

    return is_set
