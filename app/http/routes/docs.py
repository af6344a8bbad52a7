"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc), over /openapi.json.

FastAPI's own pages load their scripts from a CDN, with no integrity check and no
Content-Security-Policy: whoever controls the CDN controls a page on this origin. These pages load
the same viewers from the files the `fastapi-offline` package ships (Swagger UI and ReDoc, their
licences in that package), served from this origin under a CSP that allows no other. The viewers
style their elements inline and ReDoc runs a worker from a blob, so the policy allows those, and
nothing else from anywhere else. Off with NAMEGEN_DOCS=false: then both pages answer 404.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, HTTPException, Response

from app.config import STATIC
from app.http.errors import MAX_SHOWN_NAME

router = APIRouter(tags=["docs"], include_in_schema=False)

VIEWERS = Path(fastapi_offline.__file__).resolve().parent / "static"
# the only files served, and where each comes from: no path is ever built from the request
ASSETS = {
    "swagger-ui-bundle.js": (VIEWERS, "text/javascript; charset=utf-8"),
    "swagger-ui.css": (VIEWERS, "text/css; charset=utf-8"),
    "redoc.standalone.js": (VIEWERS, "text/javascript; charset=utf-8"),
    "favicon.png": (VIEWERS, "image/png"),
    "swagger-init.js": (STATIC / "docs", "text/javascript; charset=utf-8"),
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def read(folder: Path, name: str) -> bytes:
    return (folder / name).read_bytes()


@router.get("/docs")
async def get_swagger_ui() -> Response:
    return Response(
        read(STATIC / "docs", "swagger.html"), media_type="text/html; charset=utf-8", headers=HEADERS
    )


@router.get("/redoc")
async def get_redoc() -> Response:
    return Response(
        read(STATIC / "docs", "redoc.html"), media_type="text/html; charset=utf-8", headers=HEADERS
    )


@router.get("/docs/assets/{name}")
async def get_docs_asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, f"no such file: {name[:MAX_SHOWN_NAME]}")
    folder, media_type = ASSETS[name]
    return Response(
        read(folder, name), media_type=media_type, headers={**HEADERS, "Cache-Control": "max-age=86400"}
    )
