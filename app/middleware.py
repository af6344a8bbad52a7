"""
What every request goes through, as one pure ASGI middleware (cheaper than Starlette's
BaseHTTPMiddleware): a request id, the in-flight cap, the body size cap, Prometheus metrics and
one access log line.

- Request id: the client's `X-Request-ID` (up to 128 printable characters) or a fresh one, echoed
  in the response header and in the access line.
- In-flight cap: past NAMEGEN_MAX_IN_FLIGHT requests being served, a new one is answered 503 with
  Retry-After at once instead of queueing without bound. Probes and /metrics are exempt.
- Body cap: a body over NAMEGEN_MAX_BODY_BYTES is answered 413, whether its Content-Length says so
  or it streams past the limit.
- Metrics (label `route` is the route template, so cardinality stays bounded): see Metrics.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("namegen.access")

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})  # answered even when the service is full


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
        self.names = Counter(
            "namegen_names_generated", "Names returned by /generate, by model", ["model"],
            registry=self.registry,
        )  # fmt: skip
        self.model_info = Gauge(
            "namegen_model_info", "Loaded models (value 1), with their metadata as labels",
            ["model", "parameters", "context_length", "test_loss", "sha256"], registry=self.registry,
        )  # fmt: skip

        # the labelled children, looked up once per label set: labels() costs more than inc()
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._names_children: dict[str, Counter] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        children = self._request_children.get((route, method, status))
        if children is None:
            children = self.requests.labels(route, method, str(status)), self.latency.labels(route, method)
            self._request_children[route, method, status] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_names(self, model: str, n: int) -> None:
        child = self._names_children.get(model)
        if child is None:
            child = self._names_children[model] = self.names.labels(model)
        child.inc(n)

    def set_models(self, models: Iterable[tuple[str, int, int, float, str]]) -> None:
        self.model_info.clear()
        for name, params, ctx, test_loss, sha in models:
            self.model_info.labels(name, str(params), str(ctx), f"{test_loss:.4f}", sha).set(1)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


def _request_id(scope: Scope) -> str:
    given = _header(scope, b"x-request-id")
    if given:
        text = given.decode("latin-1")
        if len(text) <= 128 and text.isprintable():
            return text
    return uuid.uuid4().hex


async def _send_error(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        *headers],
        }
    )  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_in_flight: int, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.max_body_bytes = max_body_bytes
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _request_id(scope)
        id_header = (b"x-request-id", request_id.encode("latin-1"))
        status = 500  # what is logged if the app fails before it answers
        path, method = scope["path"], scope["method"]

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), id_header]}
            await send(message)

        route = "unmatched"
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            if self.in_flight > self.max_in_flight and path not in EXEMPT:
                self.metrics.rejected.labels("overloaded").inc()
                detail = f"server is busy ({self.max_in_flight} requests in flight); retry shortly"
                await _send_error(send_with_id, 503, detail, [(b"retry-after", b"1")])
                return
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                self.metrics.rejected.labels("body_too_large").inc()
                detail = f"request body is {int(declared)} bytes; the limit is {self.max_body_bytes}"
                await _send_error(send_with_id, 413, detail, [])
                return
            if method in ("POST", "PUT", "PATCH"):
                body, too_big = await self._read_body(receive)
                if too_big:
                    self.metrics.rejected.labels("body_too_large").inc()
                    detail = f"request body is over the limit of {self.max_body_bytes} bytes"
                    await _send_error(send_with_id, 413, detail, [])
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send_with_id)
            route_obj = scope.get("route")
            route = getattr(route_obj, "path", None) or "unmatched"
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            self.metrics.observe_request(route, method, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d %.1fms id=%s", method, route, status, elapsed * 1000, request_id,
                    extra={"fields": {"method": method, "route": route, "path": path, "status": status,
                                      "duration_ms": round(elapsed * 1000, 2), "request_id": request_id}},
                )  # fmt: skip

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return b"".join(chunks), False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replay
