"""How name-like a string is under a model."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import RegistryDep, SettingsDep, check_text, field_error, resolve_model
from app.routes.generate import ERRORS
from app.sampling import score_names
from app.schemas import NameScore, ScoreRequest, ScoreResponse

router = APIRouter(prefix="/score", tags=["score"])


@router.post("", summary="Score names", responses=ERRORS)
def post_score(req: ScoreRequest, registry: RegistryDep, settings: SettingsDep) -> ScoreResponse:
    model = resolve_model(registry, req.model)
    if len(req.names) > settings.max_score_names:
        raise field_error(
            "body",
            "names",
            f"names may hold at most {settings.max_score_names} items, got {len(req.names)}",
            len(req.names),
        )
    names = [check_text(model, s, "body", f"names[{i}]") for i, s in enumerate(req.names)]
    scores = score_names(model, names)
    return ScoreResponse(
        model=model.name,
        scores=[
            NameScore(
                name=s.name,
                logprob=s.logprob,
                nats_per_char=s.nats_per_char,
                perplexity=s.perplexity,
                in_corpus=s.in_corpus,
            )
            for s in scores
        ],
    )
