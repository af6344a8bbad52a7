"""Slow, idle, odd and departing clients, against a real uvicorn process over loopback: all of it
bounded in count and time. Figures (latencies meanwhile, when connections close) come from
`python -m bench.clients`; these tests assert only what a user relies on."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time

import httpx
import pytest

from tests.support.server import REPO, free_port, launch, rss_kb, serve
from tests.support.slow import trickle, trickle_body

pytestmark = pytest.mark.e2e

HEAVY = {"n": 1000, "prefix": "emma", "max_length": 5, "novel": True}  # rejects nearly every sample
# one long batch: every row samples 64 characters (1,000 rows x 65 steps, about 0.3 s on a fast
# core), so that requests sent just after it stay queued for hundreds of milliseconds whatever the
# machine's speed; HEAVY's batches last a few tens of milliseconds, which a fast machine can end
# within a 10 ms window
LONG = {"n": 1000, "min_length": 64, "max_length": 64, "unique": False}


def metric(text: str, name: str, **labels: str) -> float:
    """A sample's value in Prometheus text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + ("{" + want + "}" if labels else " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_slow_headers_are_cut_off_and_others_are_served() -> None:
    async def attack(url: str) -> tuple[list[bytes], list[int]]:
        host, port = url.removeprefix("http://").split(":")
        start = time.monotonic()
        slow = [asyncio.create_task(trickle(host, int(port), 0.2, start)) for _ in range(300)]
        await asyncio.sleep(0.5)
        statuses = []
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for _ in range(5):
                statuses.append((await client.get("/healthz")).status_code)
                statuses.append((await client.get("/generate", params={"n": 3})).status_code)
        return [answer for _, answer in await asyncio.gather(*slow)], statuses

    with serve(env={"NAMEGEN_HEADER_TIMEOUT_S": "2"}) as srv:
        answers, statuses = asyncio.run(attack(srv.url))
        metrics = httpx.get(f"{srv.url}/metrics").text
    assert statuses == [200] * 10  # served while 300 connections trickle
    assert all(a.startswith(b"HTTP/1.1 408 Request Timeout") for a in answers), {a[:40] for a in answers}
    assert metric(metrics, "namegen_slow_clients_total", stage="headers") == 300


def test_slow_bodies_are_cut_off_and_never_hold_a_place_in_flight() -> None:
    """Clients that send their headers and then trickle the body: with a cap of 2 requests in
    flight, 6 of them must not make the service answer 503 to everyone else (a request takes its
    place only once its body is in), and each is answered 408 at the body deadline, its connection
    closed, and counted in /metrics."""

    async def attack(url: str) -> tuple[list[bytes], list[int], float]:
        host, port = url.removeprefix("http://").split(":")
        body = json.dumps({"n": 3, "seed": 1}).encode()
        start = time.monotonic()
        slow = [asyncio.create_task(trickle_body(host, int(port), "/generate", body, 0.3)) for _ in range(6)]
        await asyncio.sleep(0.5)
        statuses = []
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for _ in range(5):
                statuses.append((await client.post("/generate", json={"n": 3})).status_code)
                statuses.append((await client.get("/next-char", params={"prefix": "jo"})).status_code)
        answers = await asyncio.gather(*slow)
        return answers, statuses, time.monotonic() - start

    env = {"NAMEGEN_MAX_IN_FLIGHT": "2", "NAMEGEN_BODY_TIMEOUT_S": "2"}
    with serve(env=env) as srv:
        answers, statuses, elapsed = asyncio.run(attack(srv.url))
        metrics = httpx.get(f"{srv.url}/metrics").text
    assert statuses == [200] * 10  # served while 6 bodies trickle in
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
    assert all(b"connection: close" in a.lower() and b"not received within 2 s" in a for a in answers)
    assert elapsed < 10  # at the deadline, not after the whole body
    assert metric(metrics, "namegen_slow_clients_total", stage="body") == 6
    assert metric(metrics, "namegen_requests_rejected_total", reason="body_timeout") == 6
    assert metric(metrics, "namegen_request_bodies_reading") == 0


def test_at_the_descriptor_limit_new_clients_are_refused_cleanly_then_served() -> None:
    """With every file descriptor held by idle connections, a new client is closed at once (never
    left hanging); once the header timeout frees the idle ones, it is served."""
    port = free_port()
    env = {"NAMEGEN_HEADER_TIMEOUT_S": "2", "NAMEGEN_LOG_LEVEL": "warning", "NAMEGEN_PORT": str(port)}
    idle: list[socket.socket] = []
    with launch(["prlimit", "--nofile=128:128", sys.executable, "-m", "app"], port, env) as srv:
        try:
            idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
            time.sleep(0.3)
            assert len(os.listdir(f"/proc/{srv.proc.pid}/fd")) >= 120  # at the limit
            try:
                status = httpx.get(f"{srv.url}/healthz", timeout=5).status_code
            except (httpx.RemoteProtocolError, httpx.ConnectError, httpx.ReadError):
                status = 0  # refused or closed: a clean refusal, and at once (no timeout)
            assert status in (0, 200)
            served = 0
            for _ in range(60):  # the header timeout closes the idle connections within seconds
                try:
                    served = httpx.get(f"{srv.url}/healthz", timeout=5).status_code
                    if served == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.5)
            assert served == 200
        finally:
            for s in idle:
                s.close()


# methods the HTTP parser knows (WebDAV and others) but the API does not: each must not be a series
ODD_METHODS = ["PROPFIND", "MKCOL", "LOCK", "UNLOCK", "COPY", "MOVE", "SEARCH", "REPORT", "PURGE", "LINK"]


def test_unknown_methods_are_one_metric_label() -> None:
    with serve() as srv:
        host, port = srv.url.removeprefix("http://").split(":")
        for method in ODD_METHODS:
            with socket.create_connection((host, int(port))) as s:
                s.sendall(f"{method} /generate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                assert s.recv(100).startswith(b"HTTP/1.1 405 ")
        text = httpx.get(f"{srv.url}/metrics").text
    series = [line for line in text.splitlines() if line.startswith("namegen_requests_total{")]
    assert not any(m in line for line in series for m in ODD_METHODS)
    assert metric(text, "namegen_requests_total", method="OTHER", route="/generate", status="405") == len(
        ODD_METHODS
    )


async def hang_up_after(url: str, path: str, body: dict[str, object], delay: float) -> None:
    """Send a request, then close the connection after `delay` seconds without reading."""
    host, port = url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    data = json.dumps(body).encode()
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    await asyncio.sleep(delay)
    writer.close()


def test_requests_whose_clients_go_away_are_cancelled_and_memory_stays_flat() -> None:
    async def scenario(url: str, pid: int) -> dict[str, float]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            # queued: behind a long batch on the same model, gone before their turn
            blocker = asyncio.create_task(client.post("/generate", json={**LONG, "seed": 1}))
            await asyncio.sleep(0.05)
            await asyncio.gather(
                *(hang_up_after(url, "/generate", {"n": 900, "seed": s}, 0.01) for s in range(5))
            )
            assert (await blocker).status_code == 200
            # between rounds or running: heavy requests gone after their first rounds
            await asyncio.gather(
                *(hang_up_after(url, "/generate", {**HEAVY, "seed": s}, 0.3) for s in range(3))
            )
            await asyncio.sleep(0.5)
            after = (await client.get("/metrics")).text
            ok = await client.post("/generate", json={"n": 5, "seed": 3})
            assert ok.status_code == 200 and ok.json()["count"] == 5  # later requests are unaffected
            # RSS over a bounded loop of such requests, from the end of its first round (the
            # allocator's arenas grow to the loop's working set once; a leak grows every round)
            before_rss = 0
            for round_ in range(5):
                await asyncio.gather(
                    *(
                        hang_up_after(url, "/generate", {**HEAVY, "seed": 100 * round_ + s}, 0.05)
                        for s in range(10)
                    )
                )
                before_rss = before_rss or rss_kb(pid)
            await asyncio.sleep(1.0)
            return {
                "queued": metric(after, "namegen_requests_cancelled_total", stage="queued"),
                "later": metric(after, "namegen_requests_cancelled_total", stage="running")
                + metric(after, "namegen_requests_cancelled_total", stage="between_rounds"),
                "rows": metric(after, "namegen_cancelled_rows_total"),
                "growth": rss_kb(pid) / before_rss,
            }

    with serve(env={"NAMEGEN_BATCH_THREADS": "1"}) as srv:
        counts = asyncio.run(scenario(srv.url, srv.proc.pid))
    # the five behind the long batch go while queued; each heavy one goes wherever it stands when
    # its client leaves (still queued, when the long batch ran late): every one of the eight is cancelled
    assert counts["queued"] >= 5 and counts["rows"] >= 5 * 900 * 0.5
    assert counts["queued"] + counts["later"] == 8
    assert counts["growth"] < 1.10


def test_a_body_cut_short_is_never_processed() -> None:
    with serve() as srv:
        host, port = srv.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b'Content-Length: 200\r\n\r\n{"names": ["emma"]}')  # fmt: skip
            time.sleep(0.2)
        time.sleep(0.3)
        text = httpx.get(f"{srv.url}/metrics").text
    assert metric(text, "namegen_requests_rejected_total", reason="client_gone") == 1
    assert metric(text, "namegen_requests_total", route="/score", method="POST", status="200") == 0
    assert metric(text, "namegen_requests_total", route="/score", method="POST", status="422") == 0


def test_the_readme_serve_command_runs_the_protected_server() -> None:
    """A newcomer's server is the image's: `namegen serve` (the README's command) cuts off a client
    that trickles its headers, as plain `uvicorn app.main:app` would not."""
    readme = (REPO / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "pip install -e . &&" in line)
    assert command.rstrip().endswith(".venv/bin/namegen serve"), command
    port = free_port()
    serve_command = [sys.executable, "-c", "from app.cli import main; main()", "serve", "--port", str(port)]
    with launch(serve_command, port, {"NAMEGEN_HEADER_TIMEOUT_S": "1"}) as srv:
        health = httpx.get(f"{srv.url}/healthz")
        assert health.status_code == 200 and "server" not in health.headers  # no "server: uvicorn"
        _, answer = asyncio.run(trickle("127.0.0.1", port, 0.2, time.monotonic()))
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer[:60]


def test_an_oversized_header_block_is_431_and_others_are_served() -> None:
    """A header of megabytes is cut off at the cap (431, connection closed) before the parser joins
    it; /healthz answers meanwhile, and ordinary headers of a few KB still pass."""

    async def attack(url: str) -> tuple[list[bytes], list[int]]:
        host, port = url.removeprefix("http://").split(":")

        async def huge() -> bytes:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ")
            answer = b""
            try:
                for _ in range(200):  # up to 12.8 MB, 64 KB at a time, until the server closes
                    writer.write(b"a" * 65536)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return answer

        attacks = [asyncio.create_task(huge()) for _ in range(4)]
        statuses = []
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for _ in range(5):
                statuses.append((await client.get("/healthz")).status_code)
            ok = await client.get("/healthz", headers={"x-fine": "b" * 8000})
            statuses.append(ok.status_code)
        return list(await asyncio.gather(*attacks)), statuses

    with serve() as srv:
        answers, statuses = asyncio.run(attack(srv.url))
    assert statuses == [200] * 6
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:60]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["detail"].startswith("request header block")
