"""The OpenAPI document, with the answers that come from the service around the routes.

The middleware (app/http/middleware.py) and the HTTP protocol (app/http/server.py) answer some
requests before any route runs: 503 when the service is busy or still loading, 413 for a body over
the limit, 408 for a body or headers that arrive too slowly, 431 for a header block over the limit.
Each has the same {"detail": "..."} body as the routes' own errors; listed on every operation here,
so that clients generated from the document can parse them too."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.http.schemas import ErrorResponse

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
ANY_REQUEST = {
    "431": "the request's header block is over the limit (NAMEGEN_MAX_HEADER_BYTES)",
    "503": "the service is busy (NAMEGEN_MAX_IN_FLIGHT) or still loading its models; retry after "
    "the Retry-After header's seconds",
}
WITH_BODY = {
    "408": "the request's body did not arrive within NAMEGEN_BODY_TIMEOUT_S; the connection is closed",
    "413": "the request's body is over the limit (NAMEGEN_MAX_BODY_BYTES)",
}


def install_openapi(app: FastAPI) -> None:
    """Make app.openapi() add the service's own answers to every operation (once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            spec.setdefault("components", {}).setdefault("schemas", {}).setdefault(
                "ErrorResponse", ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
            )
            for ops in spec.get("paths", {}).values():
                for op in ops.values():
                    answers = {**ANY_REQUEST, **(WITH_BODY if "requestBody" in op else {})}
                    for code, description in answers.items():
                        op.setdefault("responses", {}).setdefault(
                            code,
                            {
                                "description": description,
                                "content": {"application/json": {"schema": ERROR_REF}},
                            },
                        )
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
