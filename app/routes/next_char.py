"""The probability of every next character after a prefix."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.config import Settings
from app.deps import RegistryDep, SettingsDep, Where, check_text, field_error, resolve_model
from app.registry import Registry
from app.routes.generate import ERRORS
from app.sampling import next_char_distribution
from app.schemas import CharProb, NextCharRequest, NextCharResponse

router = APIRouter(prefix="/next-char", tags=["next-char"])


def next_char(req: NextCharRequest, registry: Registry, settings: Settings, where: Where) -> NextCharResponse:
    model = resolve_model(registry, req.model)
    if len(req.prefix) > settings.max_prefix_length:
        raise field_error(
            where,
            "prefix",
            f"prefix may have at most {settings.max_prefix_length} characters, got {len(req.prefix)}",
            req.prefix,
        )
    prefix = check_text(model, req.prefix, where, "prefix")
    pairs = next_char_distribution(model, prefix, req.temperature, req.top_k)
    return NextCharResponse(
        model=model.name, prefix=prefix, distribution=[CharProb(char=c, prob=p) for c, p in pairs]
    )


@router.post("", summary="Next-character distribution (JSON body)", responses=ERRORS)
def post_next_char(req: NextCharRequest, registry: RegistryDep, settings: SettingsDep) -> NextCharResponse:
    return next_char(req, registry, settings, "body")


@router.get("", summary="Next-character distribution (query parameters)", responses=ERRORS)
def get_next_char(
    req: Annotated[NextCharRequest, Query()], registry: RegistryDep, settings: SettingsDep
) -> NextCharResponse:
    return next_char(req, registry, settings, "query")
