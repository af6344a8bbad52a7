"""Request ids, the body cap, Prometheus metrics and access logs (through the ASGI app)."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from app.http.logs import JsonFormatter
from tests.app.conftest import REPO_MODELS, app_client

pytestmark = pytest.mark.anyio


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = await client.get("/healthz")
    other = await client.get("/healthz")
    assert (
        len(made.headers["x-request-id"]) == 32
        and made.headers["x-request-id"] != other.headers["x-request-id"]
    )
    bad = await client.get("/healthz", headers={"X-Request-ID": "x" * 200})
    assert len(bad.headers["x-request-id"]) == 32  # too long: replaced, not echoed


async def test_the_serving_process_is_named_only_when_asked(client: httpx.AsyncClient) -> None:
    """X-Served-By tells a client the host name and process id: internals, so off by default."""
    assert "x-served-by" not in (await client.get("/healthz")).headers
    assert "x-served-by" not in (await client.get("/generate", params={"n": 1})).headers
    async with app_client(served_by_header=True) as named:
        resp = await named.get("/healthz")
        host, pid = resp.headers["x-served-by"].rsplit("/", 1)
        assert host and pid.isdigit()
        assert "x-served-by" in resp.headers.get("access-control-expose-headers", "x-served-by").lower()


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    big = json.dumps({"names": ["a" * 60] * 20000}).encode()  # 1.3 MB > 1 MiB
    resp = await client.post("/score", content=big, headers={"content-type": "application/json"})
    assert resp.status_code == 413 and "limit is 1048576" in resp.json()["detail"]

    async def stream():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 100_000  # no Content-Length: counted as it arrives

    resp = await client.post("/score", content=stream(), headers={"content-type": "application/json"})
    assert resp.status_code == 413


async def test_metrics_use_route_templates_and_count_names(client: httpx.AsyncClient) -> None:
    await client.get("/generate", params={"n": 7, "model": "surnames", "seed": 1})
    await client.get("/models/names")
    await client.get("/models/nope")
    await client.get("/no/such/path")
    await client.get("/openapi.json")
    text = (await client.get("/metrics")).text
    assert 'namegen_requests_total{method="GET",route="/openapi.json",status="200"} 1.0' in text
    assert 'namegen_requests_total{method="GET",route="/generate",status="200"} 1.0' in text
    assert 'namegen_requests_total{method="GET",route="/models/{name}",status="200"} 1.0' in text
    assert 'namegen_requests_total{method="GET",route="/models/{name}",status="404"} 1.0' in text
    assert 'route="unmatched",status="404"' in text and "/no/such/path" not in text
    assert 'namegen_names_generated_total{model="surnames"} 7.0' in text
    assert 'namegen_request_duration_seconds_bucket{le="0.1",method="GET",route="/generate"}' in text
    assert (
        text.count("namegen_model_info{") == len(list(REPO_MODELS.glob("*.pt"))) and 'model="names"' in text
    )
    assert "namegen_requests_in_flight" in text


async def test_access_log_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    async with app_client() as client:
        logger = logging.getLogger("namegen.access")
        logger.addHandler(caplog.handler)
        try:
            await client.get("/generate", params={"n": 1}, headers={"X-Request-ID": "r-1"})
        finally:
            logger.removeHandler(caplog.handler)
    lines = [r for r in caplog.records if r.name == "namegen.access"]
    assert len(lines) == 1
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["method"] == "GET" and fields["route"] == "/generate" and fields["status"] == 200
    assert fields["request_id"] == "r-1" and fields["duration_ms"] > 0
    as_json = json.loads(JsonFormatter().format(lines[0]))
    assert as_json["request_id"] == "r-1" and as_json["logger"] == "namegen.access"


async def test_an_error_below_the_app_is_a_500_with_the_request_id(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.http.routes.models as models_route

    def boom(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(models_route, "model_info", boom)
    async with app_client() as client:
        resp = await client.get(
            "/models/names", headers={"X-Request-ID": "bug-1", "Origin": "https://a.example"}
        )
        assert resp.status_code == 500 and resp.headers["x-request-id"] == "bug-1"
        assert "bug-1" in resp.json()["detail"] and "a bug" not in resp.text  # no internals leak
        assert resp.headers["access-control-allow-origin"] == "*"
        text = (await client.get("/metrics")).text
        assert 'namegen_requests_total{method="GET",route="/models/{name}",status="500"} 1.0' in text
        assert (await client.get("/healthz")).status_code == 200  # and it keeps serving


async def test_a_logged_path_cannot_forge_log_lines(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """%0a in a path is a newline once decoded: logged as is, it would end the line and start one
    of the client's choosing."""
    import app.http.routes.models as models_route

    def boom(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(models_route, "model_info", boom)
    forged = "x%0a2026-01-01 00:00:00,000 INFO namegen.access: GET admin 200"
    async with app_client() as client:
        logger = logging.getLogger("namegen.access")
        logger.addHandler(caplog.handler)  # namegen's loggers do not propagate to the root
        try:
            assert (await client.get(f"/models/{forged}")).status_code == 404  # no such model
            monkeypatch.setattr(models_route, "model_of", boom)
            assert (await client.get(f"/models/{forged}")).status_code == 500
        finally:
            logger.removeHandler(caplog.handler)
    assert len(caplog.records) >= 3  # two access lines and the error
    for record in caplog.records:
        assert "\n" not in record.getMessage(), record.getMessage()
        assert "\n" not in json.loads(JsonFormatter().format(record)).get("path", "")
    assert any("x\\n2026-01-01" in r.getMessage() for r in caplog.records)


async def test_the_services_own_413_carries_cors_headers(client: httpx.AsyncClient) -> None:
    """A browser on another origin can read the service's own refusals (the 503 of an overloaded
    server: tests/test_operations.py)."""
    big = b"x" * ((1 << 20) + 1)
    resp = await client.post(
        "/score", content=big, headers={"Origin": "https://app.example", "content-type": "application/json"}
    )
    assert resp.status_code == 413 and resp.headers["access-control-allow-origin"] == "*"
    assert "x-request-id" in resp.headers["access-control-expose-headers"].lower()
