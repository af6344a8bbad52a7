"""Sample new names: POST with a JSON body, or GET with the same fields as query parameters."""

from __future__ import annotations

import asyncio
import random

from fastapi import APIRouter, Request, Response

from app.config import Settings
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
from app.inference.safety import SafetyFilter
from app.inference.sampling import SampleResult, SampleSpec, SampleTask, stream_of

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
    "steps": "in {sampled} samples, all the characters a request may sample (NAMEGEN_MAX_STEPS)",
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


DEFAULT_FAMILY_MODEL = "surnames"


def sample_spec(
    req: GenerateRequest,
    settings: Settings,
    prefix: str,
    start: int,
    where: Where,
    prefix_field: str = "prefix",
    share: int = 1,
) -> SampleSpec:
    """The request's sampling settings for one model, with the lengths checked against `prefix` (the
    request's `prefix_field`); with `share` parts (full names: 2), each part gets that share of the
    request's one budget of sequences and steps."""
    max_length = req.max_length if req.max_length is not None else max(DEFAULT_MAX_LENGTH, len(prefix))
    min_length = req.min_length if req.min_length is not None else 1
    if len(prefix) > max_length:
        msg = f"max_length ({max_length}) is shorter than the {prefix_field} ({len(prefix)} characters)"
        raise field_error(where, "max_length", msg, req.max_length)
    if min_length > max_length:
        msg = f"min_length ({min_length}) must not be greater than max_length ({max_length})"
        raise field_error(where, "min_length", msg, req.min_length)
    return SampleSpec(
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
        max_sequences=settings.max_sequences // share,
        max_steps=settings.max_steps // share,
        start=start,
    )


def note_for(result: SampleResult, n: int, count: int) -> str | None:
    if result.stopped is None:
        return None
    why = STOPPED[result.stopped].format(rounds=result.rounds, sampled=result.sampled)
    return (
        f"only {count} of {n} names met the constraints {why}; relax prefix, lengths, unique, novel or safe "
        "to get more"
    )


async def generate(req: GenerateRequest, service: Service, where: Where, request: Request) -> Response:
    settings = service.settings
    model = resolve_model(service.registry, req.model)
    if req.n > settings.max_n:
        raise field_error(where, "n", f"n must be between 1 and {settings.max_n}, got {req.n}", req.n)
    prefix = check_prefix(model, req.prefix, settings, where)
    start, condition = resolve_condition(service.registry, model, {"sex": req.sex, "year": req.year}, where)
    spec = sample_spec(req, settings, prefix, start, where, share=2 if req.full else 1)
    seed = req.seed if req.seed is not None else _seeds.getrandbits(32)
    safe = req.safe or settings.force_safe  # an operator may refuse to turn the filter off
    safety = service.registry.safety if safe else None
    if req.full:
        return await generate_full(req, service, where, request, spec, seed, condition, start, safe)
    for name in ("family_model", "family_prefix"):
        if getattr(req, name):
            raise field_error(
                where, name, f"{name} applies to full names only: add full=true", getattr(req, name)
            )
    task = SampleTask(model, spec, seed, safety)
    gone = client_gone(request) if watch_client(spec) else None
    await service.runner.run(model, task, settings.generate_timeout_s, gone)
    result = task.result()
    names = result.names if req.lowercase else [s.capitalize() for s in result.names]
    service.metrics.count_names(model.name, len(names))
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
            "note": note_for(result, req.n, len(names)),
            "stopped": result.stopped,
            "condition": condition,
            "family_model": None,
            "full_names": None,
            "safe": safe,
        }
    )


def pair_up(
    given: list[str], family: list[str], safety: SafetyFilter | None
) -> tuple[list[tuple[str, str]], int]:
    """Each given name with the first family name left that makes a safe full name with it (the
    filter reads the pair across the join: Mike + Hunt; each part has passed it already); and how
    many pairs were refused."""
    pairs: list[tuple[str, str]] = []
    pool = list(family)
    refused = 0
    for g in given:
        for i, f in enumerate(pool):
            if safety is None or safety.match_join(g, f) is None:
                pairs.append((g, pool.pop(i)))
                break
            refused += 1
    return pairs, refused


async def generate_full(
    req: GenerateRequest,
    service: Service,
    where: Where,
    request: Request,
    given_spec: SampleSpec,
    seed: int,
    condition: dict[str, str | int] | None,
    start: int,
    safe: bool,
) -> Response:
    """Full names: the given names and the family names sampled as two tasks, each one batched
    generation of n names (and more rounds if constraints reject some), run at once. Each part
    keeps the request's settings, its own prefix, and a seed derived from the request's."""
    settings, registry = service.settings, service.registry
    given_model = resolve_model(registry, req.model)
    family_name = req.family_model or DEFAULT_FAMILY_MODEL
    if family_name not in registry.models:
        available = ", ".join(registry.names())
        msg = f"family_model {family_name!r} is not loaded; available models: {available}"
        raise field_error(where, "family_model", msg, req.family_model)
    family_model = registry.models[family_name]
    family_prefix = check_prefix(family_model, req.family_prefix, settings, where, field="family_prefix")
    family_spec = sample_spec(req, settings, family_prefix, 0, where, prefix_field="family_prefix", share=2)
    safety = registry.safety if safe else None
    tasks = [
        SampleTask(given_model, given_spec, seed, safety),
        # the family part's random numbers depend on what the given part is drawn from (model and
        # condition): one seed gives a girls' and a boys' list different surnames
        SampleTask(
            family_model, family_spec, seed, safety, stream=stream_of(f"family|{given_model.name}|{start}")
        ),
    ]
    # one watch for the client's departure, shared: each task's run stops watching (cancels what it
    # was given) when it ends, which must not end the other's watch
    watcher = (
        asyncio.ensure_future(client_gone(request))
        if watch_client(given_spec) or watch_client(family_spec)
        else None
    )
    try:
        await asyncio.gather(
            *(
                service.runner.run(
                    t.model, t, settings.generate_timeout_s, asyncio.shield(watcher) if watcher else None
                )
                for t in tasks
            )
        )
    finally:
        if watcher is not None:
            watcher.cancel()
    given, family = (t.result() for t in tasks)
    pairs, refused = pair_up(given.names, family.names, safety)
    if not req.lowercase:
        pairs = [(g.capitalize(), f.capitalize()) for g, f in pairs]
    count = len(pairs)
    full = [{"name": f"{g} {f}", "given": g, "family": f} for g, f in pairs]
    rejected: dict[str, int] = {"unsafe": refused} if refused else {}
    for result in (given, family):
        for reason, k in result.rejected.items():
            if reason != "missing":
                rejected[reason] = rejected.get(reason, 0) + k
    if count < req.n:
        rejected["missing"] = req.n - count
    stopped = given.stopped or family.stopped
    service.metrics.count_names(given_model.name, count)
    service.metrics.count_names(family_model.name, count)
    return json_response(
        {
            "model": given_model.name,
            "names": [x["name"] for x in full],
            "seed": seed,
            "count": count,
            "requested": req.n,
            "complete": count == req.n,
            "rounds": max(given.rounds, family.rounds),
            "sampled": given.sampled + family.sampled,
            "rejected": rejected,
            "note": note_for(given if given.stopped else family, req.n, count) if stopped else None,
            "stopped": stopped,
            "condition": condition,
            "family_model": family_model.name,
            "full_names": full,
            "safe": safe,
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
