"""The probability of every next character after a prefix."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic_core import to_json

from app.http.deps import (
    ERRORS,
    Service,
    ServiceDep,
    parse_query,
    query_parameters,
    service_of,
)
from app.http.schemas import NextCharRequest, NextCharResponse
from app.http.validation import condition_of, model_of, prefix_of
from app.inference.engine import Sampling
from app.inference.sampling import NextCharTask

router = APIRouter(prefix="/next-char", tags=["next-char"])


async def next_char(req: NextCharRequest, service: Service) -> Response:
    model = model_of(service.registry, req.model)
    prefix = prefix_of(model, req.prefix, service.settings)
    start, condition = condition_of(service.registry, model, req)
    # the answer depends on these alone: a prefix asked for before is answered from the cache
    factors = tuple(condition.items()) if condition else ()
    key = (model.name, prefix, start, req.temperature, req.top_k, factors)
    if (cached := service.next_chars.get(key)) is not None:
        return Response(cached, media_type="application/json")
    task = NextCharTask(model, prefix, Sampling(temperature=req.temperature, top_k=req.top_k or 0), start)
    await service.runner.run(model, task)
    # the one body written as a dict: a NextCharResponse holds a CharProb per character, and
    # building it took a fifth of this route's requests/s under load (docs/performance.md);
    # tests/app/http/routes/test_next_char.py checks the body against the model
    distribution = [{"char": c, "prob": p} for c, p in task.distribution()]
    fields = {"model": model.name, "prefix": prefix, "condition": condition, "distribution": distribution}
    body = to_json(fields)
    service.next_chars.put(key, body)
    return Response(body, media_type="application/json")


@router.post(
    "",
    summary="Next-character distribution (JSON body)",
    response_model=NextCharResponse,
    responses=ERRORS,
    operation_id="next_char",
)
async def post_next_char(req: NextCharRequest, service: ServiceDep) -> Response:
    return await next_char(req, service)


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
    return await next_char(parse_query(NextCharRequest, request), service_of(request))
