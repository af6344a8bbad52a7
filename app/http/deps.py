"""Dependencies shared by the routers, as Annotated aliases, and the checks that need a model.

The dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in its thread
pool, a thread hop per dependency per request that the hot endpoints cannot afford."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from app.config import Settings
from app.http.middleware import Metrics
from app.inference.batching import BatchRunner
from app.inference.registry import LoadedModel, Registry

Where = Literal["query", "body"]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Service:
    """What the handlers need, made once at start-up: one dependency per request, not four."""

    registry: Registry
    runner: BatchRunner
    settings: Settings
    metrics: Metrics


async def client_gone(request: Request) -> None:
    """Returns once the client has disconnected: the ASGI server's http.disconnect message, which
    comes after the request's body (read by then) on the same receive channel."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def service_of(request: Request) -> Service:
    """The running service, or a 503 while the models are still loading."""
    service: Service | None = getattr(request.app.state, "service", None)
    if service is None:  # only between process start and the end of the lifespan start-up
        raise HTTPException(503, "models are not loaded yet", headers={"Retry-After": "1"})
    return service


async def get_service(request: Request) -> Service:
    return service_of(request)


ServiceDep = Annotated[Service, Depends(get_service)]


def parse_query(model: type[M], request: Request) -> M:
    """The query string read into `model` with one pydantic call.

    For the hot GET endpoints, in place of FastAPI's `Annotated[Model, Query()]` and dependencies,
    which read a query model field by field in Python and resolve each dependency with caching and
    scope checks: more event-loop time than the handler itself (docs/performance.md). Errors keep
    FastAPI's shape: a 422 whose `loc` is ["query", field]. A repeated parameter counts once, with
    its last value, as in FastAPI.
    Declare the parameters in OpenAPI with `openapi_extra=query_parameters(model)`."""
    try:
        return model.model_validate(dict(request.query_params), strict=False)  # text, parsed
    except ValidationError as e:
        errors = [{**err, "loc": ("query", *err["loc"])} for err in e.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def query_parameters(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring each field of `model` as a query parameter, as FastAPI does for
    `Annotated[Model, Query()]`."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    params = [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema["properties"].items()
    ]
    return {"parameters": params}


def json_response(content: dict[str, Any]) -> Response:
    """`content` as a JSON response, serialised by pydantic-core with no model in between.

    For the hot endpoints: building the response model and letting FastAPI re-validate and dump it
    costs about four times as much, for the same bytes. The route still declares its response
    model, for OpenAPI, and the tests check the bodies against it."""
    return Response(to_json(content), media_type="application/json")


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
        shown = name if name is None or len(name) <= 64 else f"{name[:64]}..."  # from a URL path
        available = ", ".join(registry.names())
        raise HTTPException(404, f"model {shown!r} not found; available models: {available}")
    return model


def check_prefix(
    model: LoadedModel, prefix: str, settings: Settings, where: Where, field: str = "prefix"
) -> str:
    """The prefix lowercased, or a 422 naming `field` if it is too long or leaves the model's
    alphabet."""
    if len(prefix) > settings.max_prefix_length:
        raise field_error(
            where,
            field,
            f"{field} may have at most {settings.max_prefix_length} characters, got {len(prefix)}",
            prefix,
        )
    return check_text(model, prefix, where, field)


def check_text(model: LoadedModel, text: str, where: Where, field: str) -> str:
    """`text` normalised once (NFC) and then lowercased, or a 422 listing the characters of the
    normalised text that are outside the model's alphabet. A character passes when it, or its
    lowercase, is a letter of the alphabet; one whose lowercase is longer (İ: i and a combining
    dot) does not pass as part of it. So what is checked is what the model reads, and the error
    names the characters as the client wrote them (after NFC)."""
    normalised = unicodedata.normalize("NFC", text)
    lowered = normalised.lower()
    if len(lowered) == len(normalised) and not model.unknown_chars(lowered):
        return lowered
    bad = list(dict.fromkeys(c for c in normalised if model.unknown_chars(c.lower()) or len(c.lower()) != 1))
    raise field_error(
        where,
        field,
        f"{field} has characters outside the alphabet of model {model.name!r}: "
        f"{''.join(bad)!r}; allowed (any case): {model.alphabet!r}",
        text,
    )


def resolve_condition(
    registry: Registry, model: LoadedModel, values: dict[str, object], where: Where
) -> tuple[int, dict[str, str | int] | None]:
    """The begin-table row for the request's condition fields (`values`: field -> value or None),
    and the condition as the model's factors, for the response; a 422 naming the field for a
    condition the model does not take or a value outside what it allows."""
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return 0, None
    conditions = model.conditions
    factors: dict[str, str | int] = {}
    for name, value in given.items():
        cf = conditions.fields.get(name) if conditions is not None else None
        if cf is None:
            takers = [
                m.name for m in registry.models.values() if m.conditions and name in m.conditions.fields
            ]
            which = (
                f"models that take it: {', '.join(sorted(takers))}" if takers else "no loaded model takes it"
            )
            raise field_error(where, name, f"model {model.name!r} takes no {name} condition; {which}", value)
        factor_value = cf.factor_value(value)  # type: ignore[arg-type]
        if factor_value is None:
            msg = f"{name} must be {cf.allowed()} for model {model.name!r}, got {value!r}"
            raise field_error(where, name, msg, value)
        factors[cf.factor] = factor_value
    return model.start_of(factors), factors
