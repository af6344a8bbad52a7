"""The probability of every next character after a prefix."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import Service, ServiceDep, Where, check_prefix, resolve_model
from app.routes.generate import ERRORS
from app.sampling import NextCharTask
from app.schemas import CharProb, NextCharRequest, NextCharResponse

router = APIRouter(prefix="/next-char", tags=["next-char"])


async def next_char(req: NextCharRequest, service: Service, where: Where) -> NextCharResponse:
    model = resolve_model(service.registry, req.model)
    prefix = check_prefix(model, req.prefix, service.settings, where)
    task = NextCharTask(model, prefix, req.temperature, req.top_k)
    await service.runner.run(model, task)
    return NextCharResponse(
        model=model.name,
        prefix=prefix,
        distribution=[CharProb(char=c, prob=p) for c, p in task.distribution()],
    )


@router.post("", summary="Next-character distribution (JSON body)", responses=ERRORS)
async def post_next_char(req: NextCharRequest, service: ServiceDep) -> NextCharResponse:
    return await next_char(req, service, "body")


@router.get("", summary="Next-character distribution (query parameters)", responses=ERRORS)
async def get_next_char(req: Annotated[NextCharRequest, Query()], service: ServiceDep) -> NextCharResponse:
    return await next_char(req, service, "query")
