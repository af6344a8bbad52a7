"""namegen.client does not trust the server: whatever answers (or does not), a call ends within its
timeout and size limit and raises one of the client's own errors. Servers here are small sockets
and mock transports that misbehave on purpose, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from namegen import AsyncClient, BadResponse, Client, NamegenError, ServerError, Unavailable
from tests.support.server import free_port


@contextmanager
def raw_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A one-connection-at-a-time loopback server that reads a request and lets `answer` write."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                with contextlib.suppress(OSError):  # the client hung up: what it should do
                    answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_an_unreachable_server_raises_the_clients_own_error() -> None:
    with Client(f"http://127.0.0.1:{free_port()}") as api, pytest.raises(Unavailable) as e:
        api.models()
    assert e.value.status is None and "cannot reach" in e.value.message


def trickle(conn: socket.socket) -> None:
    """A 200 whose 400-byte body comes two bytes a second: no read ever waits long."""
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n")
    for _ in range(200):
        conn.sendall(b"  ")
        time.sleep(0.5)


def test_a_trickled_answer_ends_at_the_calls_timeout() -> None:
    """Two bytes a second never trip a per-read timeout; the call's own deadline stops it."""
    with raw_server(trickle) as url, Client(url, timeout=2) as api, pytest.raises(Unavailable):
        api.models()


def test_the_async_client_keeps_the_same_deadline() -> None:
    async def call(url: str) -> None:
        async with AsyncClient(url, timeout=2) as api:
            await api.models()

    with raw_server(trickle) as url, pytest.raises(Unavailable):
        asyncio.run(call(url))


def test_an_answer_over_the_size_limit_is_refused_unread() -> None:
    sent = []

    def flood(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 500 Oops\r\ncontent-length: 300000000\r\n\r\n")
        for _ in range(4000):  # 256 MB at most, until the client hangs up
            conn.sendall(b"x" * 65536)
            sent.append(1)

    with (
        raw_server(flood) as url,
        Client(url, max_response_bytes=1 << 20) as api,
        pytest.raises(BadResponse) as e,
    ):
        api.models()
    assert "max_response_bytes" in e.value.message and len(sent) < 4000


def mock(status: int, content: bytes, headers: dict[str, str] | None = None) -> httpx.MockTransport:
    return httpx.MockTransport(
        lambda request: httpx.Response(status, stream=httpx.ByteStream(content), headers=headers)
    )


@pytest.mark.parametrize(
    ("status", "content", "headers", "kind", "says"),
    [
        (200, b"<html>not json</html>", {}, BadResponse, "not a ModelList"),
        (502, b'["a", "list"]', {}, ServerError, "a"),
        (307, b"", {"location": "http://elsewhere/models"}, BadResponse, "http://elsewhere/models"),
        (500, b"e" * 200_000_000, {}, ServerError, "200000000 characters"),
    ],
)
def test_odd_answers_raise_the_clients_own_errors(
    status: int, content: bytes, headers: dict[str, str], kind: type[NamegenError], says: str
) -> None:
    transport = mock(status, content, headers)
    with (
        Client("http://svc", transport=transport, max_response_bytes=1 << 30) as api,
        pytest.raises(kind) as e,
    ):
        api.models()
    assert says in e.value.message and len(e.value.message) < 2000


def test_a_retry_after_that_is_not_a_number_waits_a_second() -> None:
    waits: list[float] = []
    transport = mock(503, b'{"detail": "busy"}', {"retry-after": "nan"})
    with (
        Client("http://svc", transport=transport, retries=1, on_retry=lambda r, w: waits.append(w)) as api,
        pytest.raises(NamegenError),
    ):
        api.models()
    assert waits == [1.0]


def test_a_model_name_is_one_escaped_path_segment() -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(404, stream=httpx.ByteStream(b'{"detail": "no such model"}'))

    with Client("http://svc:8000/api/", transport=httpx.MockTransport(record)) as api:
        for name in ("../../metrics", "..", "a/b?c"):
            with pytest.raises(NamegenError):
                api.model(name)
    assert seen == ["/api/models/..%2F..%2Fmetrics", "/api/models/%2E%2E", "/api/models/a%2Fb%3Fc"]
