"""The metrics service attached as ``store.metrics``."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    make_asgi_app,
    make_wsgi_app,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from clonestore import Operation, RateLimited, Store

from ._window import LatencyWindow, percentile

__all__ = ["Metrics"]

Key = tuple[str, str, str]  # repository (table), operation (action), kind (SPI call)


class _Pending(threading.local):
    def __init__(self) -> None:
        # Writes between before_write and after_write/write_failed, by id(op).
        self.writes: dict[int, tuple[float, Any]] = {}


class _StoreCollector(Collector):
    """Collected at scrape time: the latency histograms (kept by the windows, cheaper
    per call than prometheus_client's own), the cache's hit rates and the pool."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        latency = HistogramMetricFamily(
            "clonestore_operation_seconds", "Time of repository calls through the gateway",
            labels=["repository", "operation", "kind"],
        )
        for key, window in self._metrics.windows():
            buckets, total = window.histogram()
            latency.add_metric(list(key), buckets, total)
        yield latency
        store = self._store
        if store.closed:
            return
        cache = store.services.get("cache")
        if cache is not None:
            hits = CounterMetricFamily("clonestore_cache_hits", "Cache hits", labels=["cache"])
            misses = CounterMetricFamily("clonestore_cache_misses", "Cache misses",
                                         labels=["cache"])
            ratio = GaugeMetricFamily("clonestore_cache_hit_ratio",
                                      "Cache hits over lookups", labels=["cache"])
            entries = GaugeMetricFamily("clonestore_cache_entries", "Live cache entries",
                                        labels=["cache"])
            for name, stats in cache.stats().items():
                hits.add_metric([name], stats.hits)
                misses.add_metric([name], stats.misses)
                ratio.add_metric([name], stats.hit_rate)
                entries.add_metric([name], stats.entries)
            yield from (hits, misses, ratio, entries)
        pool = store.health().get("pool")
        if isinstance(pool, dict):
            size = GaugeMetricFamily("clonestore_pool_size", "Connections the pool may hold")
            size.add_metric([], pool.get("size", 0))
            used = GaugeMetricFamily("clonestore_pool_connections", "Pooled connections",
                                     labels=["state"])
            used.add_metric(["in_use"], pool.get("in_use", 0))
            used.add_metric(["idle"], pool.get("idle", 0))
            yield from (size, used)


class Metrics:
    """Latency, errors, cache and pool numbers of one store.

    Per operation (``"user.get"``) and repository (its table): latency
    histograms (Prometheus) and the latest calls' p50/p95/p99 (:meth:`percentiles`),
    error counts by class, rate-limit refusals; the cache's hit rates and the
    pool's use at scrape time. Export with :meth:`exposition`, :meth:`asgi_app`
    or :meth:`wsgi_app` (a ``/metrics`` endpoint).
    """

    #: The Content-Type of :meth:`exposition`.
    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self, store: Store, tracer: Any = None, tracing: Callable[[], bool] | None = None
    ) -> None:
        self._store = store
        self._tracer = tracer
        self._tracing = tracing or (lambda: True)
        self.registry = CollectorRegistry()
        self._errors = Counter(
            "clonestore_operation_errors", "Failed calls by error class",
            ["repository", "operation", "error"], registry=self.registry,
        )
        self._refusals = Counter(
            "clonestore_ratelimit_refusals", "Writes refused by the rate limiter",
            ["operation"], registry=self.registry,
        )
        self._windows: dict[Key, LatencyWindow] = {}
        self._windows_lock = threading.Lock()
        self._error_classes: dict[str, int] = {}
        self._pending = _Pending()
        self.registry.register(_StoreCollector(store, self))

    # ------------------------------------------------------------------ recording

    def _window(self, op: Operation) -> LatencyWindow:
        key = (op.table.name, op.action, op.kind)
        window = self._windows.get(key)
        if window is None:
            with self._windows_lock:
                window = self._windows.setdefault(key, LatencyWindow())
        return window

    def windows(self) -> list[tuple[Key, LatencyWindow]]:
        """Every (repository, operation, kind) timed so far, with its window."""
        with self._windows_lock:
            return sorted(self._windows.items())

    def observe(self, op: Operation, seconds: float) -> None:
        """Record a call of ``op`` that took ``seconds``."""
        self._window(op).add(seconds)

    def failed(self, op: Operation, error: BaseException) -> None:
        """Record a failed call of ``op`` (a refused write counts as a rate-limit refusal)."""
        name = type(error).__name__
        self._errors.labels(op.table.name, op.action, name).inc()
        with self._windows_lock:
            self._error_classes[name] = self._error_classes.get(name, 0) + 1
        self._window(op).errors += 1
        if isinstance(error, RateLimited):
            self._refusals.labels(op.action).inc()

    def span(self, op: Operation) -> Any:
        """A started OpenTelemetry span for ``op``, or None without OpenTelemetry."""
        if self._tracer is None or not self._tracing():
            return None
        span = self._tracer.start_span(op.action)
        if span.is_recording():  # attributes only for a provider that keeps them
            span.set_attributes({
                "db.system": str(getattr(self._store.backend, "name", "unknown")),
                "clonestore.repository": op.table.name,
                "clonestore.operation": op.action,
                "clonestore.kind": op.kind,
            })
        return span

    def write_started(self, op: Operation) -> None:
        self._pending.writes[id(op)] = (time.perf_counter(), self.span(op))

    def write_ended(self, op: Operation, error: BaseException | None = None) -> None:
        started, span = self._pending.writes.pop(id(op), (None, None))
        if error is None:
            if started is not None:
                self.observe(op, time.perf_counter() - started)
        else:
            self.failed(op, error)
        if span is not None:
            end_span(span, error)

    # ------------------------------------------------------------------ reading

    def percentiles(
        self, operation: str | None = None, repository: str | None = None
    ) -> dict[str, float]:
        """``count`` (all calls), ``errors``, and ``p50_ms``, ``p95_ms``, ``p99_ms`` over
        the latest calls of ``operation`` (``"user.get"``) and/or ``repository``
        (``"users"``); of every call when both are None. NaN before any call."""
        with self._windows_lock:
            chosen = [
                window for (table, action, _), window in self._windows.items()
                if (operation is None or action == operation)
                and (repository is None or table == repository)
            ]
        samples = LatencyWindow.merged(chosen)
        return {
            "count": sum(w.count for w in chosen),
            "errors": sum(w.errors for w in chosen),
            "p50_ms": percentile(samples, 0.50) * 1000,
            "p95_ms": percentile(samples, 0.95) * 1000,
            "p99_ms": percentile(samples, 0.99) * 1000,
        }

    def summary(self) -> dict[str, Any]:
        """Every operation's numbers (as :meth:`percentiles`), errors by class and
        rate-limit refusals: what the Studio's metrics page shows."""
        with self._windows_lock:
            keys = sorted({(table, action) for table, action, _ in self._windows})
            errors = dict(sorted(self._error_classes.items()))
        rows = []
        for table, action in keys:
            numbers = self.percentiles(operation=action, repository=table)
            if numbers["count"] or numbers["errors"]:
                rows.append({"repository": table, "operation": action, **numbers})
        refusals = sum(m.value for m in _samples(self._refusals) if m.name.endswith("_total"))
        return {"operations": rows, "errors": errors, "ratelimit_refusals": int(refusals)}

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (serve it as :attr:`content_type`)."""
        return generate_latest(self.registry)

    def asgi_app(self) -> Any:
        """An ASGI app answering with :meth:`exposition` (mount it at ``/metrics``)."""
        return make_asgi_app(registry=self.registry)

    def wsgi_app(self) -> Any:
        """A WSGI app answering with :meth:`exposition`."""
        return make_wsgi_app(registry=self.registry)


def _samples(metric: Any) -> list[Any]:
    return [sample for family in metric.collect() for sample in family.samples]


def end_span(span: Any, error: BaseException | None) -> None:
    """End ``span``, marking it failed with ``error`` when given."""
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()


def finite(value: float) -> float | None:
    """``value``, or None when NaN (for JSON)."""
    return None if math.isnan(value) else value
