"""The playground page at `/`: plain HTML, CSS and JavaScript from app/static, under a strict
Content-Security-Policy (only this origin's own files, no inline script). Off with
NAMEGEN_PLAYGROUND=false: then `/` answers 404, like any unknown path."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter, HTTPException, Response

from app.config import STATIC
from app.http.errors import MAX_SHOWN_NAME

router = APIRouter(tags=["playground"], include_in_schema=False)

ASSETS = {"playground.js": "text/javascript; charset=utf-8", "playground.css": "text/css; charset=utf-8"}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate: a new release's page is seen at once
}


@cache
def read_static(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@router.get("/")
async def get_playground() -> Response:
    return Response(read_static("index.html"), media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/static/{name}")
async def get_asset(name: str) -> Response:
    if name not in ASSETS:  # a fixed list: no path is ever built from the request
        raise HTTPException(404, f"no such file: {name[:MAX_SHOWN_NAME]}")
    return Response(read_static(name), media_type=ASSETS[name], headers=HEADERS)
