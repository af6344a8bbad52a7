"""Operating a real uvicorn process: overload is refused at once, oversized bodies get 413, and
SIGTERM lets in-flight requests finish while refusing new connections."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from tests.support.server import REPO, serve

MODELS = REPO / "models"

pytestmark = pytest.mark.e2e

BIG = {"n": 1000, "unique": False, "seed": 1}  # a request that keeps the server busy a while


def test_overload_is_answered_503_with_retry_after() -> None:
    async def burst(url: str) -> tuple[list[httpx.Response], httpx.Response]:
        origin = {"Origin": "https://app.example"}  # a browser's: it must be able to read Retry-After
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=origin) as client:
            work = [asyncio.create_task(client.post("/generate", json=BIG)) for _ in range(24)]
            await asyncio.sleep(0.05)
            health = await client.get("/healthz")  # probes are never refused
            return list(await asyncio.gather(*work)), health

    with serve(env={"NAMEGEN_MAX_IN_FLIGHT": "2"}) as srv:
        responses, health = asyncio.run(burst(srv.url))
        statuses = [r.status_code for r in responses]
        assert set(statuses) == {200, 503}, statuses
        assert statuses.count(200) >= 2
        refused = next(r for r in responses if r.status_code == 503)
        assert refused.headers["retry-after"] == "1" and "busy" in refused.json()["detail"]
        assert refused.headers["access-control-allow-origin"] == "*" and refused.headers["x-request-id"]
        assert "retry-after" in refused.headers["access-control-expose-headers"].lower()
        assert health.status_code == 200
        metrics = httpx.get(f"{srv.url}/metrics").text
        assert 'namegen_requests_rejected_total{reason="overloaded"}' in metrics


def test_oversized_body_is_413() -> None:
    with serve(env={"NAMEGEN_MAX_BODY_BYTES": "4096"}) as srv:
        body = {"names": ["emma"] * 2000}
        resp = httpx.post(f"{srv.url}/score", json=body)
        assert resp.status_code == 413 and "limit is 4096" in resp.json()["detail"]
        assert httpx.post(f"{srv.url}/score", json={"names": ["emma"]}).status_code == 200


def test_sigterm_finishes_in_flight_requests_and_refuses_new_ones() -> None:
    async def burst_then_term(url: str, proc: object) -> tuple[list[int], bool]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            work = [asyncio.create_task(client.post("/generate", json={**BIG, "seed": i})) for i in range(16)]
            deadline = time.monotonic() + 30
            while True:  # the server's own count: all 16 in flight (and this /metrics request)
                text = (await client.get("/metrics")).text
                if float(text.split("\nnamegen_requests_in_flight ")[1].split()[0]) >= 17:
                    break
                assert time.monotonic() < deadline, "the 16 requests were never in flight at once"
                await asyncio.sleep(0.01)
            assert not any(w.done() for w in work)
            proc.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
            await asyncio.sleep(0.1)
            try:
                async with httpx.AsyncClient(timeout=2) as fresh:
                    await fresh.get(f"{url}/healthz")
                refused = False
            except httpx.TransportError:
                refused = True
            results = await asyncio.gather(*work, return_exceptions=True)
        return [r.status_code if isinstance(r, httpx.Response) else -1 for r in results], refused

    with serve() as srv:
        statuses, refused = asyncio.run(burst_then_term(srv.url, srv.proc))
        deadline = time.monotonic() + 30
        while srv.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert statuses == [200] * 16  # zero failed in-flight requests
        assert refused, "a new connection was accepted after SIGTERM"
        # uvicorn re-raises the signal once it has shut down cleanly, so the status is -SIGTERM
        assert srv.proc.returncode in (0, -signal.SIGTERM)
        log = srv.log()
        assert "Shutting down" in log and "Application shutdown complete" in log
        assert "Traceback" not in log


def test_json_logs_and_startup_report() -> None:
    import json

    with serve(env={"NAMEGEN_LOG_FORMAT": "json"}) as srv:
        httpx.get(f"{srv.url}/generate", params={"n": 2}, headers={"X-Request-ID": "json-1"})
        time.sleep(0.2)
        lines = [json.loads(line) for line in srv.log().splitlines() if line.startswith("{")]
    access = [x for x in lines if x["logger"] == "namegen.access" and x["request_id"] == "json-1"]
    assert len(access) == 1 and access[0]["status"] == 200 and access[0]["method"] == "GET"
    assert access[0]["route"] == "/generate" and access[0]["duration_ms"] > 0
    loaded = [x["message"] for x in lines if x["message"].startswith("loaded model")]
    assert len(loaded) == len(list(MODELS.glob("*.pt"))) and all("bytes" in m and " ms)" in m for m in loaded)
