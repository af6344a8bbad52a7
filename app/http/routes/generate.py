"""Sample new names: POST with a JSON body, or GET with the same fields as query parameters."""

from __future__ import annotations

import random

from fastapi import APIRouter, Request, Response

from app.http.deps import (
    Service,
    ServiceDep,
    Where,
    check_prefix,
    client_gone,
    field_error,
    json_response,
    parse_query,
    query_parameters,
    resolve_condition,
    resolve_model,
    service_of,
)
from app.http.schemas import ErrorResponse, GenerateRequest, GenerateResponse
from app.inference.sampling import SampleSpec, SampleTask

router = APIRouter(prefix="/generate", tags=["generate"])

# seeds for requests that bring none: any 32-bit value will do, and a seeded Random is far
# cheaper per request than os.urandom (the secrets module)
_seeds = random.Random()
DEFAULT_MAX_LENGTH = 32  # longest name when the request sets no max_length
ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "no such model"},
    422: {"model": ErrorResponse, "description": "a field is out of range or has bad characters"},
}


STOPPED = {  # why a request ended with fewer than n names, for its note
    "rounds": "in {rounds} rounds, the most a request may sample (NAMEGEN_MAX_ROUNDS)",
    "sequences": "in {sampled} samples, the most a request may draw (NAMEGEN_MAX_SEQUENCES)",
    "deadline": "before the request's deadline (NAMEGEN_GENERATE_TIMEOUT_S), in {sampled} samples",
}


def watch_client(spec: SampleSpec) -> bool:
    """Whether to watch for the client going away: for any request that may take more than one
    small batch. A small plain one is answered within milliseconds anyway."""
    return (
        spec.n > 64
        or spec.novel
        or bool(spec.prefix)
        or spec.min_length > 1
        or spec.max_length < DEFAULT_MAX_LENGTH
    )


async def generate(req: GenerateRequest, service: Service, where: Where, request: Request) -> Response:
    settings = service.settings
    model = resolve_model(service.registry, req.model)
    if req.n > settings.max_n:
        raise field_error(where, "n", f"n must be between 1 and {settings.max_n}, got {req.n}", req.n)
    prefix = check_prefix(model, req.prefix, settings, where)
    max_length = req.max_length if req.max_length is not None else max(DEFAULT_MAX_LENGTH, len(prefix))
    min_length = req.min_length if req.min_length is not None else 1
    if len(prefix) > max_length:
        msg = f"max_length ({max_length}) is shorter than the prefix ({len(prefix)} characters)"
        raise field_error(where, "max_length", msg, req.max_length)
    if min_length > max_length:
        msg = f"min_length ({min_length}) must not be greater than max_length ({max_length})"
        raise field_error(where, "min_length", msg, req.min_length)
    start, condition = resolve_condition(service.registry, model, {"sex": req.sex, "year": req.year}, where)
    seed = req.seed if req.seed is not None else _seeds.getrandbits(32)
    spec = SampleSpec(
        n=req.n,
        temperature=req.temperature,
        top_k=req.top_k,
        top_p=req.top_p,
        prefix=prefix,
        min_length=min_length,
        max_length=max_length,
        unique=req.unique,
        novel=req.novel,
        max_rounds=settings.max_rounds,
        max_batch=settings.max_round_rows,
        max_sequences=settings.max_sequences,
        start=start,
    )
    task = SampleTask(model, spec, seed)
    gone = client_gone(request) if watch_client(spec) else None
    await service.runner.run(model, task, settings.generate_timeout_s, gone)
    result = task.result()
    names = result.names if req.lowercase else [s.capitalize() for s in result.names]
    service.metrics.count_names(model.name, len(names))
    note = None
    if result.stopped is not None:
        why = STOPPED[result.stopped].format(rounds=result.rounds, sampled=result.sampled)
        note = (
            f"only {len(names)} of {req.n} names met the constraints {why}; relax prefix, lengths, "
            "unique or novel to get more"
        )
    return json_response(
        {
            "model": model.name,
            "names": names,
            "seed": seed,
            "count": len(names),
            "requested": req.n,
            "complete": result.complete,
            "rounds": result.rounds,
            "sampled": result.sampled,
            "rejected": result.rejected,
            "note": note,
            "stopped": result.stopped,
            "condition": condition,
        }
    )


@router.post(
    "",
    summary="Generate names (JSON body)",
    response_model=GenerateResponse,
    responses=ERRORS,
    operation_id="generate",
)
async def post_generate(req: GenerateRequest, service: ServiceDep, request: Request) -> Response:
    return await generate(req, service, "body", request)


@router.get(
    "",
    summary="Generate names (query parameters)",
    response_model=GenerateResponse,
    responses=ERRORS,
    operation_id="generate_get",
    openapi_extra=query_parameters(GenerateRequest),
)
async def get_generate(request: Request) -> Response:
    # no dependencies here: see parse_query
    return await generate(parse_query(GenerateRequest, request), service_of(request), "query", request)
