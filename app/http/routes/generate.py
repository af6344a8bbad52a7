"""Sample new names: POST with a JSON body, or GET with the same fields as query parameters."""

from __future__ import annotations

import asyncio
import random

from fastapi import APIRouter, Request, Response

from app.config import DEFAULT_MAX_LENGTH
from app.http.deps import (
    ERRORS,
    Service,
    ServiceDep,
    client_gone,
    model_response,
    parse_query,
    query_parameters,
    service_of,
)
from app.http.schemas import FullName, GenerateRequest, GenerateResponse
from app.http.validation import GeneratePlan, generate_plan
from app.inference.safety import SafetyFilter
from app.inference.sampling import SampleResult, SampleSpec, SampleTask, stream_of

router = APIRouter(prefix="/generate", tags=["generate"])

# seeds for requests that bring none: any 32-bit value will do, and a seeded Random is far
# cheaper per request than os.urandom (the secrets module)
_seeds = random.Random()
WATCH_ABOVE_N = 64  # requests for more names than this watch for their client going away


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
        spec.n > WATCH_ABOVE_N
        or spec.novel
        or bool(spec.prefix)
        or spec.sampling.min_length > 1
        or spec.sampling.max_length < DEFAULT_MAX_LENGTH
    )


def note_for(result: SampleResult, n: int, count: int) -> str | None:
    if result.stopped is None:
        return None
    why = STOPPED[result.stopped].format(rounds=result.rounds, sampled=result.sampled)
    return (
        f"only {count} of {n} names met the constraints {why}; relax prefix, lengths, unique, novel or safe "
        "to get more"
    )


async def generate(req: GenerateRequest, service: Service, request: Request) -> GenerateResponse:
    settings = service.settings
    plan = generate_plan(req, service.registry, settings)
    safe = req.safe or settings.force_safe  # an operator may refuse to turn the filter off
    safety = service.registry.safety if safe else None
    full: list[FullName] | None = None
    # a small request without a seed: a result sampled ahead, with its own seed (app/inference/pool.py)
    pooled: tuple[int, SampleResult] | None = None
    if req.seed is not None:
        seed = req.seed
    elif plan.family_model is None and (pooled := service.pool.take(plan.model, plan.spec, safety)):
        seed = pooled[0]
    else:
        seed = _seeds.getrandbits(32)
    if plan.family_model is not None:
        full, result, stopped = await generate_full(req, service, request, plan, seed, safety)
        names = [f.name for f in full]
        service.metrics.count_names(plan.family_model.name, len(names))
    else:
        if pooled is not None:
            result = pooled[1]
            service.metrics.count_pooled(plan.model.name)
        else:
            task = SampleTask(plan.model, plan.spec, seed, safety)
            gone = client_gone(request) if watch_client(plan.spec) else None
            await service.runner.run(plan.model, task, settings.generate_timeout_s, gone)
            result = task.result()
        stopped = result
        names = result.names if req.lowercase else [s.capitalize() for s in result.names]
    service.metrics.count_names(plan.model.name, len(names))
    return GenerateResponse(
        model=plan.model.name,
        names=names,
        seed=seed,
        count=len(names),
        requested=req.n,
        complete=result.complete,
        rounds=result.rounds,
        sampled=result.sampled,
        rejected=result.rejected,
        note=note_for(stopped, req.n, len(names)),
        stopped=result.stopped,
        condition=plan.condition,
        family_model=plan.family_model.name if plan.family_model is not None else None,
        full_names=full,
        safe=safe,
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
    request: Request,
    plan: GeneratePlan,
    seed: int,
    safety: SafetyFilter | None,
) -> tuple[list[FullName], SampleResult, SampleResult]:
    """Full names: the given names and the family names sampled as two tasks, each one batched
    generation of n names (and more rounds if constraints reject some), run at once. Each part
    keeps the request's settings, its own prefix, and a seed derived from the request's. Returns
    the full names, both parts' results together, and the part whose stop the note reports."""
    settings = service.settings
    given_model, given_spec = plan.model, plan.spec
    assert plan.family_model is not None and plan.family_spec is not None
    family_model, family_spec = plan.family_model, plan.family_spec
    # the family part's random numbers depend on what the given part is drawn from (model and
    # condition): one seed gives a girls' and a boys' list different surnames
    start = given_spec.start
    drawn_from = f"{given_model.name}|{start.row}" + (f"|{start.twin}" if start.twin >= 0 else "")
    tasks = [
        SampleTask(given_model, given_spec, seed, safety),
        SampleTask(family_model, family_spec, seed, safety, stream=stream_of(f"family|{drawn_from}")),
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
    neutral = given_model.neutral
    is_neutral = (lambda g: g.lower() in neutral) if neutral else (lambda g: None)
    full = [FullName(name=f"{g} {f}", given=g, family=f, neutral=is_neutral(g)) for g, f in pairs]
    rejected: dict[str, int] = {"unsafe": refused} if refused else {}
    for part in (given, family):
        for reason, k in part.rejected.items():
            if reason != "missing":
                rejected[reason] = rejected.get(reason, 0) + k
    if len(full) < req.n:
        rejected["missing"] = req.n - len(full)
    both = SampleResult(
        names=[f.name for f in full],
        rounds=max(given.rounds, family.rounds),
        sampled=given.sampled + family.sampled,
        rejected=rejected,
        stopped=given.stopped or family.stopped,
    )
    return full, both, given if given.stopped else family


@router.post(
    "",
    summary="Generate names (JSON body)",
    response_model=GenerateResponse,
    responses=ERRORS,
    operation_id="generate",
)
async def post_generate(req: GenerateRequest, service: ServiceDep, request: Request) -> Response:
    return model_response(await generate(req, service, request))


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
    return model_response(await generate(parse_query(GenerateRequest, request), service_of(request), request))
