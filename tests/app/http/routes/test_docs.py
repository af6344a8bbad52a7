"""/docs and /redoc: the viewers' files come from this origin, under a Content-Security-Policy that
allows no other; NAMEGEN_DOCS=false turns both pages off. (tests/test_playground.py renders /docs
in Chromium.)"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.app.conftest import app_client

pytestmark = pytest.mark.anyio


async def test_the_docs_pages_load_nothing_from_another_origin(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        resp = await client.get(page)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        csp = resp.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "default-src 'self'" in csp
        assert "<script>" not in resp.text  # no inline script: the CSP would block it anyway
        urls = re.findall(r'(?:src|href|spec-url)="([^"]+)"', resp.text)
        assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 100, url
    assert "SwaggerUIBundle" in (await client.get("/docs/assets/swagger-ui-bundle.js")).text
    assert (await client.get("/docs/assets/..%2fconfig.py")).status_code == 404
    assert (await client.get("/docs/assets/index.html")).status_code == 404


async def test_docs_can_be_turned_off() -> None:
    async with app_client(docs=False) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/redoc")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 200  # the document itself stays
