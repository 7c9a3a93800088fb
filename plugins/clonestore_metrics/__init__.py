"""The metrics plugin (``plugins=["metrics"]``): how the store behaves, in numbers.

Every repository call passing through the gateway is timed: reads around the
whole ``clonestore_read`` chain (a cache hit included), writes from
``clonestore_before_write`` to ``clonestore_after_write`` (the statement and the
other plugins' work, inside the write's transaction). ``store.metrics``
(:class:`Metrics`) gives:

- per operation and repository latency histograms (Prometheus) and the latest
  calls' p50/p95/p99 from Python: ``store.metrics.percentiles("user.get")``;
- error counts by class, and writes refused by the rate limiter;
- at scrape time, the cache's hits, misses, hit rate and entries per cache
  (with the cache plugin) and the connection pool's use (where ``health()``
  reports a pool);
- the Prometheus exposition: ``exposition()``, or ``asgi_app()`` /
  ``wsgi_app()`` to serve ``/metrics``; the Studio has a metrics page.

With ``opentelemetry-api`` installed, each call is also a span named after its
operation (``user.get``), with the repository, operation, SPI call and
``db.system`` as attributes, on the tracer provider given to
:class:`MetricsPlugin` or else the global one (once the application has set
one; until then no span is made). Uses only clonestore's public API.
"""

from __future__ import annotations

from collections.abc import Generator
from time import perf_counter as time_now
from typing import Any

from clonestore import ClonestoreError, Operation, Store, hookimpl

from ._service import Metrics, end_span
from ._tracing import global_provider_is_set, make_tracer
from ._window import BUCKETS, SAMPLES

__all__ = ["BUCKETS", "SAMPLES", "Metrics", "MetricsPlugin", "plugin"]


class MetricsPlugin:
    """Attaches :class:`Metrics` as ``store.metrics``.

    :param spans: emit OpenTelemetry spans when ``opentelemetry-api`` is installed.
    :param tracer_provider: the provider to take the tracer from (default: global).
    """

    def __init__(self, *, spans: bool = True, tracer_provider: Any = None) -> None:
        self.spans = spans
        self.tracer_provider = tracer_provider

    def __repr__(self) -> str:
        return f"<MetricsPlugin spans={self.spans}>"

    @hookimpl
    def clonestore_store_opened(self, store: Store) -> None:
        """Attach ``store.metrics``."""
        tracer = make_tracer(self.tracer_provider) if self.spans else None
        tracing = None
        if tracer is not None and self.tracer_provider is None:
            tracing = global_provider_is_set()
        store.attach("metrics", Metrics(store, tracer, tracing))

    @hookimpl(wrapper=True, tryfirst=True)
    def clonestore_read(
        self, store: Store, op: Operation, fetch: Any
    ) -> Generator[None, Any, Any]:
        """Time the read as the caller sees it (the cache's answer included)."""
        metrics: Metrics = store.services["metrics"]
        span = metrics.span(op)
        started = time_now()
        try:
            result = yield
            if result is None:
                # No plugin answered: fetch here, so the backend's time is inside
                # the measurement (the gateway then takes what was fetched).
                result = fetch()
        except ClonestoreError as error:
            metrics.failed(op, error)
            if span is not None:
                end_span(span, error)
            raise
        metrics.observe(op, time_now() - started)
        if span is not None:
            end_span(span, None)
        return result

    @hookimpl(tryfirst=True)
    def clonestore_before_write(self, store: Store, op: Operation) -> None:
        """Start timing the write."""
        metrics: Metrics = store.services["metrics"]
        metrics.write_started(op)

    @hookimpl(trylast=True)
    def clonestore_after_write(self, store: Store, op: Operation, result: Any) -> None:
        """The write succeeded: record its time."""
        metrics: Metrics = store.services["metrics"]
        metrics.write_ended(op)

    @hookimpl
    def clonestore_write_failed(self, store: Store, op: Operation, error: BaseException) -> None:
        """The write was refused or failed: count its error class."""
        metrics: Metrics = store.services["metrics"]
        metrics.write_ended(op, error)

#: The plugin enabled by name (``plugins=["metrics"]``).
plugin = MetricsPlugin()
