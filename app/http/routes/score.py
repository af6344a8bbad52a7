"""How name-like a string is under a model."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.http.deps import ERRORS, ServiceDep, client_gone
from app.http.schemas import NameScore, ScoreRequest, ScoreResponse
from app.http.validation import check_score_names, condition_of, model_of, text_of
from app.inference.sampling import ScoreTask

router = APIRouter(prefix="/score", tags=["score"])
WATCH_ABOVE_NAMES = 64  # requests scoring more names than this watch for their client going away


@router.post("", summary="Score names", responses=ERRORS, operation_id="score")
async def post_score(req: ScoreRequest, service: ServiceDep, request: Request) -> ScoreResponse:
    settings = service.settings
    model = model_of(service.registry, req.model)
    check_score_names(req.names, settings)
    names = [text_of(model, s, f"names[{i}]") for i, s in enumerate(req.names)]
    start, condition = condition_of(service.registry, model, req)
    task = ScoreTask(model, names, start)
    # hundreds of names may wait behind other batches: stop if the client goes
    gone = client_gone(request) if len(names) > WATCH_ABOVE_NAMES else None
    await service.runner.run(model, task, settings.score_timeout_s, gone)
    neutral = model.neutral  # empty: the model names no rule, and says nothing (null)
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
                neutral=s.name in neutral if neutral else None,
            )
            for s in task.scores()
        ],
    )
