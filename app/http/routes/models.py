"""What is loaded: every model's metadata and measured quality."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path

from app.http.deps import ServiceDep
from app.http.schemas import (
    CorpusInfo,
    ErrorResponse,
    IntegrityInfo,
    Limits,
    ModelInfo,
    ModelList,
    ModelMetrics,
)
from app.http.validation import model_of
from app.inference.loaded import NEUTRAL_SEX, Conditions, LoadedModel

router = APIRouter(prefix="/models", tags=["models"])


def model_info(model: LoadedModel, default: str) -> ModelInfo:
    meta = model.meta
    return ModelInfo(
        name=model.name,
        description=meta["description"],
        default=model.name == default,
        vocab=model.vocab,
        alphabet=model.alphabet,
        context_length=model.context_length,
        parameters=meta["parameters"],
        architecture=meta["architecture"],
        metrics=ModelMetrics(**meta["metrics"]),
        corpus=CorpusInfo(**meta["corpus"]),
        created_at=meta["created_at"],
        torch_version=meta.get("torch_version"),
        sha256=model.sha256,
        size_bytes=model.size_bytes,
        incremental=model.incremental,
        integrity=IntegrityInfo(**asdict(model.integrity)),
        conditions=None if model.conditions is None else conditions_info(model.conditions, meta),
        neutral_rule=meta.get("neutral", {}).get("rule"),
        neutral_names=len(model.neutral) if "neutral" in meta else None,
    )


def conditions_info(conditions: Conditions, meta: dict[str, Any]) -> dict[str, Any]:
    """What a client needs of a model's conditions: the request fields and their values (with the
    value that pairs two of them: sex neutral), the factors, what leaving a field out does (not the
    token table, which is the engine's)."""
    raw = meta["conditions"]
    info: dict[str, Any] = {k: raw[k] for k in ("fields", "factors", "absent") if k in raw}
    fields = {name: dict(spec) for name, spec in info.get("fields", {}).items()}
    for name, field in conditions.fields.items():
        if (pair := field.pair_of(NEUTRAL_SEX)) is not None and name in fields:
            fields[name]["pairs"] = {NEUTRAL_SEX: list(pair)}
    return {**info, "fields": fields}


@router.get("", summary="List the loaded models", operation_id="list_models")
async def list_models(service: ServiceDep) -> ModelList:
    registry, settings = service.registry, service.settings
    data = [model_info(registry.models[n], registry.default) for n in registry.names()]
    limits = Limits(
        max_n=settings.max_n,
        max_prefix_length=settings.max_prefix_length,
        max_score_names=settings.max_score_names,
    )
    return ModelList(
        data=data,
        count=len(data),
        default=registry.default,
        limits=limits,
        manifest=registry.manifest,
        skipped=registry.skipped,
    )


@router.get(
    "/{name}",
    summary="One model's metadata",
    operation_id="get_model",
    responses={
        404: {"model": ErrorResponse, "description": "no such model"},
        422: {"model": ErrorResponse, "description": "the name is not a valid path segment"},
    },
)
async def get_model(
    name: Annotated[str, Path(description="a loaded model's name (GET /models)")], service: ServiceDep
) -> ModelInfo:
    registry = service.registry
    return model_info(model_of(registry, name), registry.default)
