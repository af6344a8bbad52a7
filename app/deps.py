"""Dependencies shared by the routers, as Annotated aliases, and the checks that need a model.

The dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in its thread
pool, a thread hop per dependency per request that the hot endpoints cannot afford."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request

from app.batching import BatchRunner
from app.config import Settings
from app.middleware import Metrics
from app.registry import LoadedModel, Registry

Where = Literal["query", "body"]


@dataclass(frozen=True)
class Service:
    """What the handlers need, made once at start-up: one dependency per request, not four."""

    registry: Registry
    runner: BatchRunner
    settings: Settings
    metrics: Metrics


async def get_service(request: Request) -> Service:
    service: Service | None = getattr(request.app.state, "service", None)
    if service is None:  # only between process start and the end of the lifespan start-up
        raise HTTPException(503, "models are not loaded yet", headers={"Retry-After": "1"})
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def field_error(where: Where, field: str, msg: str, value: object) -> HTTPException:
    """A 422 in the same shape as FastAPI's own validation errors, naming the field."""
    return HTTPException(
        422, detail=[{"loc": [where, field], "msg": msg, "type": "value_error", "input": value}]
    )


def resolve_model(registry: Registry, name: str | None) -> LoadedModel:
    """The loaded model called `name` (the default when None); 404 naming the models there are.
    Names are only ever looked up in the registry, never turned into paths."""
    model = registry.models.get(registry.default if name is None else name)
    if model is None:
        raise HTTPException(404, f"model {name!r} not found; available models: {', '.join(registry.names())}")
    return model


def check_prefix(model: LoadedModel, prefix: str, settings: Settings, where: Where) -> str:
    """The prefix lowercased, or a 422 if it is too long or leaves the model's alphabet."""
    if len(prefix) > settings.max_prefix_length:
        raise field_error(
            where,
            "prefix",
            f"prefix may have at most {settings.max_prefix_length} characters, got {len(prefix)}",
            prefix,
        )
    return check_text(model, prefix, where, "prefix")


def check_text(model: LoadedModel, text: str, where: Where, field: str) -> str:
    """`text` lowercased, or a 422 listing the characters outside the model's alphabet."""
    lowered = text.lower()
    bad = model.unknown_chars(lowered)
    if bad:
        raise field_error(
            where,
            field,
            f"{field} has characters outside the alphabet of model {model.name!r}: "
            f"{''.join(bad)!r}; allowed (any case): {model.alphabet!r}",
            text,
        )
    return lowered
