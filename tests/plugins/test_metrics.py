"""The metrics plugin on every backend: latency percentiles per operation and repository,
errors by class, rate-limit refusals, cache hit rates and pool use in the Prometheus
exposition, the /metrics helpers, OpenTelemetry spans, and one registry per store."""

from __future__ import annotations

import re

import pytest
from clonestore_metrics import MetricsPlugin
from clonestore_ratelimit import Policy, RateLimitPlugin
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from starlette.testclient import TestClient

from clonestore import AlreadyExists, RateLimited


def _sample(exposition: bytes, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels...}`` (labels in any order), or None."""
    for line in exposition.decode().splitlines():
        series, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', series))
        if series.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


def test_latency_percentiles_per_operation_and_repository(store_factory) -> None:
    """Each users.get is timed: count, p50 <= p95 <= p99 from Python, and the histogram's
    count in the exposition; the repository's numbers include its other operations."""
    store = store_factory(plugins=["metrics"])
    user = store.users.create(email="ada@example.com", name="Ada")
    for _ in range(40):
        store.users.get(user.id)
    numbers = store.metrics.percentiles("user.get")
    assert numbers["count"] == 40
    assert 0 < numbers["p50_ms"] <= numbers["p95_ms"] <= numbers["p99_ms"]
    assert store.metrics.percentiles(repository="users")["count"] == 41  # and the create
    assert store.metrics.percentiles("user.create")["count"] == 1
    exposition = store.metrics.exposition()
    assert _sample(exposition, "clonestore_operation_seconds_count", operation="user.get",
                   repository="users", kind="get") == 40
    rows = {r["operation"]: r for r in store.metrics.summary()["operations"]}
    assert rows["user.get"]["count"] == 40


def test_errors_are_counted_by_class(store_factory) -> None:
    """A failed write counts under its error class, per operation, in Python and Prometheus."""
    store = store_factory(plugins=["metrics"])
    store.users.create(email="ada@example.com", name="Ada")
    with pytest.raises(AlreadyExists):
        store.users.create(email="ADA@example.com", name="Ada again")
    assert store.metrics.summary()["errors"] == {"AlreadyExists": 1}
    assert store.metrics.percentiles("user.create")["errors"] == 1
    assert _sample(store.metrics.exposition(), "clonestore_operation_errors_total",
                   operation="user.create", error="AlreadyExists") == 1


def test_rate_limit_refusals_are_counted(store_factory) -> None:
    """Writes the rate limiter refuses count as refusals (and as RateLimited errors)."""
    limiter = RateLimitPlugin(tiers={"free": {"*": Policy(1, 60)}}, enforce={"*": "writes"})
    store = store_factory(plugins=["metrics", limiter])
    user = store.users.create(email="ada@example.com", name="Ada")
    with store.context(actor_id=user.id):
        store.users.update(user.id, name="A1")
        for _ in range(2):
            with pytest.raises(RateLimited):
                store.users.update(user.id, name="A2")
    assert store.metrics.summary()["ratelimit_refusals"] == 2
    assert _sample(store.metrics.exposition(), "clonestore_ratelimit_refusals_total",
                   operation="user.update") == 2


def test_cache_hit_rate_and_pool_use_at_scrape_time(store_factory) -> None:
    """With the cache, the exposition carries each cache's hits and hit ratio; where
    health() reports a pool, its size and connections in use."""
    store = store_factory(plugins=["metrics", "cache"])
    user = store.users.create(email="ada@example.com", name="Ada")
    for _ in range(4):
        store.users.get(user.id)
    exposition = store.metrics.exposition()
    hits = _sample(exposition, "clonestore_cache_hits_total", cache="entity")
    assert hits is not None
    assert hits >= 3
    ratio = _sample(exposition, "clonestore_cache_hit_ratio", cache="entity")
    assert ratio is not None
    assert 0.5 <= ratio <= 1
    pool = store.health().get("pool")
    size = _sample(exposition, "clonestore_pool_size")
    if pool is None:
        assert size is None
    else:
        assert size == pool["size"]
        assert _sample(exposition, "clonestore_pool_connections", state="in_use") == 0


def test_metrics_endpoints_and_the_studio_page(store_factory) -> None:
    """asgi_app() serves the exposition; the Studio's metrics page shows the percentiles."""
    from clonestore.studio import create_app

    store = store_factory(plugins=["metrics"])
    user = store.users.create(email="ada@example.com", name="Ada")
    store.users.get(user.id)
    served = TestClient(store.metrics.asgi_app()).get("/")
    assert served.status_code == 200
    assert "clonestore_operation_seconds_bucket" in served.text
    studio = TestClient(create_app(store), base_url="http://127.0.0.1")
    page = studio.get("/metrics")
    assert page.status_code == 200
    assert "<td>user.get</td>" in page.text
    raw = studio.get("/metrics/prometheus")
    assert raw.headers["content-type"].startswith("text/plain")
    assert "clonestore_operation_seconds_count" in raw.text
    assert store.metrics.wsgi_app() is not None


def test_each_call_is_an_opentelemetry_span(store_factory) -> None:
    """With a tracer provider, reads and writes are spans named after the operation; a
    failed write's span is marked as an error."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = store_factory(plugins=[MetricsPlugin(tracer_provider=provider)])
    user = store.users.create(email="ada@example.com", name="Ada")
    store.users.get(user.id)
    with pytest.raises(AlreadyExists):
        store.users.create(email="ada@example.com", name="Ada")
    spans = {(s.name, s.status.status_code) for s in exporter.get_finished_spans()}
    assert ("user.get", StatusCode.UNSET) in spans
    assert ("user.create", StatusCode.ERROR) in spans
    get = next(s for s in exporter.get_finished_spans() if s.name == "user.get")
    assert get.attributes["clonestore.repository"] == "users"
    assert get.attributes["db.system"] == store.backend.name


def test_each_store_has_its_own_numbers(store_factory) -> None:
    """Two stores with the plugin keep separate registries and counts."""
    first = store_factory(plugins=["metrics"])
    second = store_factory(plugins=["metrics"])
    user = first.users.create(email="ada@example.com", name="Ada")
    first.users.get(user.id)
    assert first.metrics.percentiles("user.get")["count"] == 1
    assert second.metrics.percentiles("user.get")["count"] == 0
    assert first.metrics.registry is not second.metrics.registry
