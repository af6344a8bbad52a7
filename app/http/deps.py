"""What the routers share: the service as a dependency (an Annotated alias), the query-string
reader of the hot GET routes, the response writer, and the error table of the model routes.

The dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in its thread
pool, a thread hop per dependency per request that the hot endpoints cannot afford."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.config import Settings
from app.http.cache import ResponseCache
from app.http.metrics import Metrics
from app.http.schemas import ErrorResponse
from app.inference.batching import BatchRunner
from app.inference.pool import SamplePool
from app.inference.registry import Registry

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Service:
    """What the handlers need, made once at start-up: one dependency per request, not four."""

    registry: Registry
    runner: BatchRunner
    pool: SamplePool
    next_chars: ResponseCache  # /next-char's bodies by request
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
    # the query string as Starlette reads it (latin-1, blank values kept), without building its
    # multidict: a dict of the last values is all the model takes
    fields = dict(parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True))
    try:
        return model.model_validate(fields, strict=False)  # text, parsed
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


def model_response(body: BaseModel) -> Response:
    """A response model as a JSON response, serialised by pydantic-core straight from the model.

    For the hot endpoints, in place of returning the model and letting FastAPI validate it again
    and dump it: that costs several times as much, for the same bytes. The route declares the
    same model as its response_model, for OpenAPI."""
    return Response(body.__pydantic_serializer__.to_json(body), media_type="application/json")


ERRORS: dict[int | str, dict[str, object]] = {  # the answers of the routes that read a model
    404: {"model": ErrorResponse, "description": "no such model"},
    422: {"model": ErrorResponse, "description": "a field is out of range or has bad characters"},
}
