"""The service's Prometheus metrics: the per-app registry that the middleware, the routes and the
batcher count into, and the process-wide count of connections closed for slow clients, which the
HTTP protocol (app/http/server.py) keeps before any app sees the request."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "namegen_requests", "HTTP requests by route template, method and status code",
            ["route", "method", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "namegen_request_duration_seconds", "Time to answer a request, by route template",
            ["route", "method"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )  # fmt: skip
        self.in_flight = Gauge(
            "namegen_requests_in_flight", "Requests being served now", registry=self.registry
        )
        self.rejected = Counter(
            "namegen_requests_rejected", "Requests refused before routing, by reason",
            ["reason"], registry=self.registry,
        )  # fmt: skip
        self.cancelled = Counter(
            "namegen_requests_cancelled", "Requests whose client went away before their answer, by "
            "how far their work had got: queued (none ran), running, between_rounds",
            ["stage"], registry=self.registry,
        )  # fmt: skip
        self.cancelled_rows = Counter(
            "namegen_cancelled_rows", "Rows of cancelled requests that never ran", registry=self.registry
        )
        self.names = Counter(
            "namegen_names_generated", "Names returned by /generate, by model", ["model"],
            registry=self.registry,
        )  # fmt: skip
        self.pooled = Counter(
            "namegen_generate_pooled", "/generate requests without a seed answered from results sampled "
            "ahead (NAMEGEN_POOL_SIZE), by model", ["model"], registry=self.registry,
        )  # fmt: skip
        self.bodies_reading = Gauge(
            "namegen_request_bodies_reading", "Requests whose body is still arriving (not yet in flight)",
            registry=self.registry,
        )  # fmt: skip
        self.registry.register(SlowClientsCollector())
        self.model_info = Gauge(
            "namegen_model_info", "Loaded models (value 1), with their metadata as labels",
            ["model", "parameters", "context_length", "test_loss", "sha256"], registry=self.registry,
        )  # fmt: skip

        # the labelled children, looked up once per label set: labels() costs more than inc()
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._names_children: dict[str, Counter] = {}
        self._pooled_children: dict[str, Counter] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        children = self._request_children.get((route, method, status))
        if children is None:
            children = self.requests.labels(route, method, str(status)), self.latency.labels(route, method)
            self._request_children[route, method, status] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_cancelled(self, stage: str, rows_never_run: int) -> None:
        self.cancelled.labels(stage).inc()
        self.cancelled_rows.inc(rows_never_run)

    def count_names(self, model: str, n: int) -> None:
        child = self._names_children.get(model)
        if child is None:
            child = self._names_children[model] = self.names.labels(model)
        child.inc(n)

    def count_pooled(self, model: str) -> None:
        child = self._pooled_children.get(model)
        if child is None:
            child = self._pooled_children[model] = self.pooled.labels(model)
        child.inc()

    def set_models(self, models: Iterable[tuple[str, int, int, float, str]]) -> None:
        self.model_info.clear()
        for name, params, ctx, test_loss, sha in models:
            self.model_info.labels(name, str(params), str(ctx), f"{test_loss:.4f}", sha).set(1)


# connections closed because their client sent a request too slowly, by what it was sending, in
# this process: the header deadline is the HTTP protocol's (app/http/server.py), the body deadline
# this middleware's; one process-wide count, as both stages close the connection
SLOW_CLIENTS = {"headers": 0, "body": 0, "oversized_headers": 0}


class SlowClientsCollector(Collector):
    """SLOW_CLIENTS as a Prometheus counter, read when /metrics is scraped."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "namegen_slow_clients",
            "Connections closed because the client sent a request too slowly, by what it was sending: "
            "headers (NAMEGEN_HEADER_TIMEOUT_S) or body (NAMEGEN_BODY_TIMEOUT_S); or a header block "
            "over NAMEGEN_MAX_HEADER_BYTES (oversized_headers)",
            labels=["stage"],
        )
        for stage, count in SLOW_CLIENTS.items():
            family.add_metric([stage], count)
        yield family
