"""How name-like a string is under a model."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.http.deps import ServiceDep, check_text, client_gone, field_error, resolve_condition, resolve_model
from app.http.routes.generate import ERRORS
from app.http.schemas import NameScore, ScoreRequest, ScoreResponse
from app.inference.sampling import ScoreTask

router = APIRouter(prefix="/score", tags=["score"])


@router.post("", summary="Score names", responses=ERRORS, operation_id="score")
async def post_score(req: ScoreRequest, service: ServiceDep, request: Request) -> ScoreResponse:
    settings = service.settings
    model = resolve_model(service.registry, req.model)
    if len(req.names) > settings.max_score_names:
        msg = f"names may hold at most {settings.max_score_names} items, got {len(req.names)}"
        raise field_error("body", "names", msg, len(req.names))
    names = [check_text(model, s, "body", f"names[{i}]") for i, s in enumerate(req.names)]
    start, condition = resolve_condition(service.registry, model, {"sex": req.sex, "year": req.year}, "body")
    task = ScoreTask(model, names, start)
    # hundreds of names may wait behind other batches: stop if the client goes
    gone = client_gone(request) if len(names) > 64 else None
    await service.runner.run(model, task, settings.score_timeout_s, gone)
    return ScoreResponse(
        model=model.name,
        condition=condition,
        scores=[
            NameScore(
                name=s.name,
                logprob=s.logprob,
                nats_per_char=s.nats_per_char,
                perplexity=s.perplexity,
                in_corpus=s.in_corpus,
            )
            for s in task.scores()
        ],
    )
