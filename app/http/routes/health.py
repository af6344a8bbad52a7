"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.http.deps import Service
from app.http.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers", operation_id="healthz")
async def get_health() -> HealthResponse:
    return HealthResponse(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: models are loaded",
    operation_id="readyz",
    responses={503: {"model": ReadyResponse, "description": "models are not loaded (yet)"}},
)
async def get_ready(request: Request, response: Response) -> ReadyResponse:
    service: Service | None = getattr(request.app.state, "service", None)
    if service is None:
        response.status_code = 503
        response.headers["Retry-After"] = "1"
        return ReadyResponse(status="loading", models=[])
    registry = service.registry
    return ReadyResponse(status="ready", models=registry.names(), default=registry.default)
