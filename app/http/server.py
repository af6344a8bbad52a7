"""
Running the service: uvicorn with a deadline for every request's headers.

    python -m app                      # NAMEGEN_HOST, NAMEGEN_PORT, NAMEGEN_WORKERS, ...
    uvicorn app.main:app --http app.http.server:HeaderTimeoutProtocol

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but gives a client unlimited time
to send a request's headers, so clients that trickle them a byte at a time (slowloris) each hold a
connection, and a file descriptor, for as long as they like. HeaderTimeoutProtocol is uvicorn's
httptools protocol with one addition: from the moment a connection opens, or a keep-alive
connection's next request begins, its headers must be complete within NAMEGEN_HEADER_TIMEOUT_S;
past it the client gets a 408 and the connection is closed. A request's body is not subject to it
(the body size cap and the app's own bounds apply there). And a request's header block may hold at
most NAMEGEN_MAX_HEADER_BYTES bytes: past it the client gets a 431 and the connection is closed, as
proxies do (nginx: 4 buffers of 8 KB).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import Settings, get_settings
from app.http.metrics import SLOW_CLIENTS

LINGER_S = 2.0  # after a 431, how long the client's further bytes are read and dropped
HEADERS_TOO_LARGE_BODY = b'{"detail":"request header block is over the limit of %d bytes"}'
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 36\r\nconnection: close\r\n\r\nrequest headers not received in time"
)


def headers_too_large(limit: int) -> bytes:
    body = HEADERS_TOO_LARGE_BODY % limit
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline and a size cap for each request's headers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout_s = settings.header_timeout_s
        self.max_header_bytes = settings.max_header_bytes
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0  # bytes of the current request's header block received so far
        self._in_body = False  # between a request's end of headers and its end
        self._discarding = False  # answered 431: what arrives is dropped until the connection closes

    def data_received(self, data: bytes) -> None:
        """Count the header block's bytes before the parser sees them: past the cap, answer 431
        and close. httptools builds a long header value by repeated concatenation on the event
        loop, so a header of megabytes stalls every other request; the cap keeps that bounded."""
        if self._discarding:
            return
        if not self._in_body:
            end = data.find(b"\r\n\r\n")
            self._header_bytes += len(data) if end < 0 else end
            if self._header_bytes > self.max_header_bytes:
                self._refuse_headers()
                return
        super().data_received(data)

    def _refuse_headers(self) -> None:
        """Answer 431, then close the connection after a short lingering wait in which what the
        client still sends is read and dropped: closing at once with unread data would reset the
        connection, and the client would lose the answer."""
        self._disarm()
        self._discarding = True
        SLOW_CLIENTS["oversized_headers"] += 1
        if self.transport.is_closing():
            return
        self.transport.write(headers_too_large(self.max_header_bytes))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # the first request's headers are due from the moment the connection opens

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # a keep-alive connection's next request
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_body, self._header_bytes = True, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False  # what comes next on the connection is the next request's headers
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            SLOW_CLIENTS["headers"] += 1
            self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()


def address_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port (taken, not this machine's, not permitted), or
    None. Checked before the models load: uvicorn binds only after start-up, so a taken port would
    otherwise fail seconds later, after "Application startup complete"."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"cannot listen on {host}:{port}: the host is unknown ({e.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return (
                    f"cannot listen on {host}:{port}: the port is already in use (another server?); "
                    "choose another with --port or NAMEGEN_PORT"
                )
            return f"cannot listen on {host}:{port}: {e.strerror}; choose another with --host/--port"
    return None


def main(settings: Settings | None = None) -> None:
    """Serve app.main:app with HeaderTimeoutProtocol, as the settings say; exit at once, saying
    why, when the address cannot be listened on."""
    settings = settings or get_settings()
    problem = address_problem(settings.host, settings.port)
    if problem is not None:
        raise SystemExit(f"namegen: {problem}")
    uvicorn.run(
        "app.main:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        http="app.http.server:HeaderTimeoutProtocol",
        timeout_keep_alive=settings.keep_alive_s,
        access_log=False,  # the app logs one line per request itself (app/http/middleware.py)
        server_header=False,  # no "server: uvicorn": what runs inside is not the client's business
    )
