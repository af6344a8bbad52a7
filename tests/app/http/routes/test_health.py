"""Health probes, OpenAPI docs and CORS."""

from __future__ import annotations

import httpx
import pytest

from app.main import create_app

pytestmark = pytest.mark.anyio


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "models": ["names", "names-era", "names-female", "names-male", "surnames"],
        "default": "names",
    }


async def test_readyz_is_503_until_models_load() -> None:
    app = create_app()  # lifespan not started: nothing loaded
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        resp = await client.get("/readyz")
        assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/models")).status_code == 503


async def test_openapi_documents_every_operation_with_examples(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    ops = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert {
        ("/generate", "get"),
        ("/generate", "post"),
        ("/next-char", "get"),
        ("/next-char", "post"),
        ("/score", "post"),
        ("/models", "get"),
        ("/models/{name}", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    } <= ops
    assert spec["components"]["schemas"]["GenerateRequest"]["examples"]
    assert "404" in spec["paths"]["/generate"]["post"]["responses"]
    assert (await client.get("/docs")).status_code == 200


async def test_cors_allows_any_origin_by_default(client: httpx.AsyncClient) -> None:
    resp = await client.options(
        "/generate",
        headers={
            "Origin": "https://example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == "*"
    simple = await client.get("/healthz", headers={"Origin": "https://example.org"})
    assert simple.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in simple.headers


async def test_cors_origins_setting_narrows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.config import get_settings

    monkeypatch.setenv("NAMEGEN_CORS_ORIGINS", '["https://ok.example"]')
    get_settings.cache_clear()
    try:
        app = create_app()
    finally:
        get_settings.cache_clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        ok = await client.get("/healthz", headers={"Origin": "https://ok.example"})
        assert ok.headers["access-control-allow-origin"] == "https://ok.example"
        other = await client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
