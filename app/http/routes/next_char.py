"""The probability of every next character after a prefix."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.http.deps import (
    Service,
    ServiceDep,
    Where,
    check_prefix,
    json_response,
    parse_query,
    query_parameters,
    resolve_condition,
    resolve_model,
    service_of,
)
from app.http.routes.generate import ERRORS
from app.http.schemas import NextCharRequest, NextCharResponse
from app.inference.sampling import NextCharTask

router = APIRouter(prefix="/next-char", tags=["next-char"])


async def next_char(req: NextCharRequest, service: Service, where: Where) -> Response:
    model = resolve_model(service.registry, req.model)
    prefix = check_prefix(model, req.prefix, service.settings, where)
    start, condition = resolve_condition(service.registry, model, {"sex": req.sex, "year": req.year}, where)
    task = NextCharTask(model, prefix, req.temperature, req.top_k, start)
    await service.runner.run(model, task)
    distribution = [{"char": c, "prob": p} for c, p in task.distribution()]
    return json_response(
        {"model": model.name, "prefix": prefix, "condition": condition, "distribution": distribution}
    )


@router.post(
    "",
    summary="Next-character distribution (JSON body)",
    response_model=NextCharResponse,
    responses=ERRORS,
    operation_id="next_char",
)
async def post_next_char(req: NextCharRequest, service: ServiceDep) -> Response:
    return await next_char(req, service, "body")


@router.get(
    "",
    summary="Next-character distribution (query parameters)",
    response_model=NextCharResponse,
    responses=ERRORS,
    operation_id="next_char_get",
    openapi_extra=query_parameters(NextCharRequest),
)
async def get_next_char(request: Request) -> Response:
    # no dependencies here: see parse_query
    return await next_char(parse_query(NextCharRequest, request), service_of(request), "query")
