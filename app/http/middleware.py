"""
What every request goes through, as one pure ASGI middleware (cheaper than Starlette's
BaseHTTPMiddleware): a request id, the in-flight cap, the body size cap, Prometheus metrics and
one access log line.

- Request id: the client's `X-Request-ID` (up to 128 printable characters) or a fresh one, echoed
  in the response header and in the access line; with NAMEGEN_SERVED_BY_HEADER, `X-Served-By`
  names the process (host/pid).
- Body: read whole before anything else, within NAMEGEN_BODY_TIMEOUT_S (past it: 408, and the
  connection is closed) and NAMEGEN_MAX_BODY_BYTES (past it: 413, whether its Content-Length says
  so or it streams past the limit). A body cut short by a disconnect is dropped, never processed.
- In-flight cap: past NAMEGEN_MAX_IN_FLIGHT requests being served, a new one is answered 503 with
  Retry-After at once instead of queueing without bound. Probes and /metrics are exempt. A request
  takes its place only once its body is in: clients that trickle a body hold a connection, for at
  most the body deadline, but never a place that others need.
- Errors: an exception below (a bug) is answered 500 with the request id, and logged; this
  middleware's own answers (408, 413, 503, 500) carry the CORS headers, so a browser can read them.
- Metrics (label `route` is the route template, `method` one of METHODS or OTHER, so the number of
  series stays bounded whatever clients send): app/http/metrics.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.metrics import SLOW_CLIENTS, Metrics

access_log = logging.getLogger("namegen.access")

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})  # answered even when the service is full
# methods that are their own metric label; any other is "OTHER", so clients cannot add series
METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})


def escaped(text: str) -> str:
    """`text` for a log line: control and non-ASCII characters as escapes (a path's %0a is a
    newline once decoded, and would start a forged line)."""
    return text if text.isascii() and text.isprintable() else text.encode("unicode_escape").decode("ascii")


def route_template(scope: Scope) -> str:
    """The template of the route that answered (/models/{name}), for metrics and logs; "unmatched"
    for a path no route has. FastAPI records its API routes in the scope; the routes Starlette
    serves itself (/openapi.json) are looked up among the app's routes."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return str(path)
    app = scope.get("app")
    for candidate in getattr(app, "routes", ()):
        if isinstance(candidate, Route) and candidate.matches(scope)[0] is Match.FULL:
            return candidate.path
    return "unmatched"


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


class ServiceMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        max_in_flight: int,
        max_body_bytes: int,
        cors: dict[str, Any] | None = None,
        body_timeout_s: float = 10.0,
        served_by: bool = False,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.cors = cors  # CORSMiddleware's options: this middleware's own answers carry them too
        self.in_flight = 0
        # which process answered (host/pid), when asked for (NAMEGEN_SERVED_BY_HEADER): with several
        # workers or replicas, the one to look at; off by default, as it tells clients internals
        self.extra_headers = (
            [(b"x-served-by", f"{socket.gethostname()}/{os.getpid()}".encode("latin-1", "replace"))]
            if served_by
            else []
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = _request_id(scope)
        id_header = (b"x-request-id", request_id.encode("latin-1"))
        status = 0  # 0 until the response starts; then its status code
        path = scope["path"]
        method = scope["method"] if scope["method"] in METHODS else "OTHER"  # a bounded label

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), id_header, *self.extra_headers],
                }
            await send(message)

        async def answer(code: int, detail: str, headers: dict[str, str] | None = None) -> None:
            """This middleware's own answer, with the request id and, for browsers, CORS."""
            response: ASGIApp = JSONResponse({"detail": detail}, status_code=code, headers=headers)
            if self.cors is not None:
                response = CORSMiddleware(response, **self.cors)
            await response(scope, receive, send_with_id)

        route = "unmatched"
        in_flight = False  # whether this request holds a place among those in flight
        try:
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                self.metrics.rejected.labels("body_too_large").inc()
                await answer(
                    413, f"request body is {int(declared)} bytes; the limit is {self.max_body_bytes}"
                )
                return
            if scope["method"] in ("POST", "PUT", "PATCH"):
                body, outcome = await self._read_body(receive)
                if outcome == "too_big":
                    self.metrics.rejected.labels("body_too_large").inc()
                    await answer(413, f"request body is over the limit of {self.max_body_bytes} bytes")
                    return
                if outcome == "too_slow":
                    self.metrics.rejected.labels("body_timeout").inc()
                    SLOW_CLIENTS["body"] += 1
                    detail = f"request body not received within {self.body_timeout_s:g} s"
                    await answer(408, detail, {"Connection": "close"})  # the rest of it is never read
                    return
                if outcome == "gone":  # cut short by a disconnect: never processed as if whole
                    self.metrics.rejected.labels("client_gone").inc()
                    status = 499  # nginx's "client closed request", for the log and the metrics
                    return
                receive = _replay(body, receive)
            in_flight = True
            self.in_flight += 1
            self.metrics.in_flight.inc()
            if self.in_flight > self.max_in_flight and path not in EXEMPT:
                self.metrics.rejected.labels("overloaded").inc()
                busy = f"{self.max_in_flight} request{'s are' if self.max_in_flight != 1 else ' is'}"
                detail = f"server is busy: {busy} in flight, the most it serves at once; retry shortly"
                await answer(503, detail, {"Retry-After": "1"})
                return
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                if status:  # the response had started: all that can be done is to drop it
                    raise
                access_log.exception(
                    "unhandled error answering %s %s (id=%s)", method, escaped(path), request_id
                )
                await answer(500, f"internal error; quote request id {request_id} when reporting it")
            route = route_template(scope)
        finally:
            if in_flight:
                self.in_flight -= 1
                self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            status = status or 500
            self.metrics.observe_request(route, method, status, elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d %.1fms id=%s", method, route, status, elapsed * 1000, request_id,
                    extra={"fields": {"method": method, "route": route, "path": escaped(path),
                                      "status": status, "duration_ms": round(elapsed * 1000, 2),
                                      "request_id": request_id}},
                )  # fmt: skip

    async def _read_body(self, receive: Receive) -> tuple[bytes, str]:
        """The whole body, and "ok"; or "too_big" past the limit; "too_slow" when it has not all
        arrived within the body deadline; or "gone" when the client disconnected before its end."""
        chunks: list[bytes] = []
        size = 0
        self.metrics.bodies_reading.inc()
        try:
            async with asyncio.timeout(self.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":  # http.disconnect
                        return b"", "gone"
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        return b"", "too_big"
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks), "ok"
        except TimeoutError:
            return b"", "too_slow"
        finally:
            self.metrics.bodies_reading.dec()


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replay
