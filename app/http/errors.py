"""
Error responses that cannot themselves fail, whatever the client sent.

FastAPI's own handlers echo the offending input back as JSON. Some inputs cannot be written as
JSON at all, and the handler then fails with a 500: NaN or Infinity, which Python's JSON parser
accepts in a request body; lone surrogates, which a JSON string may spell as "\\ud800". Others make
the answer far larger than the request: 80,000 unknown keys in an 870 KB body gave an 8 MB list of
errors, and 200,000 names to score were echoed back whole. These handlers keep FastAPI's shape
({"detail": ...}, each error with its loc, msg and type) but make every value JSON-safe and bound
its size, and say when they left something out.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.inference.batching import ClientGone, DeadlineExceeded, ServiceClosing


class FieldError(ValueError):
    """A request field whose value the service cannot take (app/http/validation.py): answered as a
    422 in FastAPI's own shape, naming the field and what it allows."""

    def __init__(self, field: str, message: str, value: object) -> None:
        super().__init__(message)
        self.field, self.message, self.value = field, message, value


MAX_ERRORS = 20  # validation errors listed in one response; the rest are counted
MAX_ITEMS = 20  # items of an echoed list or object
MAX_CHARS = 200  # characters of an echoed string
# characters of an unknown name (a model, a file) repeated in its 404: it may come from a URL path
MAX_SHOWN_NAME = 64
# what FastAPI answers when a body cannot be parsed at all: bad UTF-8, or nesting too deep for
# Python's JSON parser (malformed JSON gets a 422 json_invalid error instead)
UNPARSABLE_BODY = "There was an error parsing the body"


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` with everything JSON cannot carry replaced by text, and big values cut short (for
    echoed input)."""
    if isinstance(value, str):
        text = _text(value)
        return f"{text[:MAX_CHARS]}... ({len(value)} characters)" if len(text) > MAX_CHARS else text
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # NaN, inf: not JSON numbers
    if depth >= 4:
        return "..."
    if isinstance(value, dict):
        items = list(value.items())
        out = {_text(str(k))[:MAX_CHARS]: json_safe(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["..."] = f"{len(items) - MAX_ITEMS} more keys"
        return out
    if isinstance(value, (list, tuple)):
        out_list = [json_safe(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            out_list.append(f"... {len(value) - MAX_ITEMS} more items")
        return out_list
    return json_safe(str(value), depth)  # an exception in ctx, or anything else: its text


def _text(value: str) -> str:
    """`value` writable as UTF-8: a lone surrogate becomes its escape, e.g. \\ud800."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _error(error: Any) -> Any:
    """One error of a 422 list: its message and location whole, what it echoes cut short."""
    if not isinstance(error, dict):
        return json_safe(error)
    out: dict[str, Any] = {}
    for key, value in error.items():
        if key in ("msg", "type"):
            out[key] = _text(str(value))
        elif key == "loc":
            out[key] = [v if isinstance(v, int) else _text(str(v))[:MAX_CHARS] for v in value]
        else:
            out[key] = json_safe(value)
    return out


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _errors(list(exc.errors()))}, status_code=422)


def _errors(errors: list[Any]) -> list[Any]:
    """A list of errors, each made safe, at most MAX_ERRORS of them and a count of the rest."""
    detail = [_error(e) for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        msg = f"and {len(errors) - MAX_ERRORS} more errors"
        detail.append({"type": "too_many_errors", "loc": [], "msg": msg})
    return detail


async def handle_field_error(request: Request, exc: Exception) -> Response:
    """The field is where the request carried it: the query string of a GET, else the body."""
    assert isinstance(exc, FieldError)
    where = "query" if request.method == "GET" else "body"
    error = {"loc": [where, exc.field], "msg": exc.message, "type": "value_error", "input": exc.value}
    return JSONResponse({"detail": _errors([error])}, status_code=422)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = getattr(exc, "headers", None)
    if exc.status_code in (204, 304) or exc.status_code < 200:
        return Response(status_code=exc.status_code, headers=headers)
    detail: Any = exc.detail
    if exc.status_code == 400 and detail == UNPARSABLE_BODY:
        detail = (
            "the body could not be parsed: send UTF-8 JSON (Content-Type: application/json), "
            "an object of the fields in the API schema, nested at most a few hundred levels"
        )
    elif isinstance(detail, str):
        detail = _text(detail)
    elif isinstance(detail, list):
        detail = _errors(detail)
    else:
        detail = json_safe(detail)
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=headers)


async def handle_service_closing(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})


async def handle_deadline(request: Request, exc: Exception) -> Response:
    detail = "the service is busy: the request waited past its deadline for its turn; retry shortly"
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})


async def handle_client_gone(request: Request, exc: Exception) -> Response:
    """Nobody reads this answer: the client has gone. 499 ("client closed request", as nginx
    logs it) is what the access log and the metrics record."""
    return Response(status_code=499)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(HTTPException, handle_http_exception)
    app.add_exception_handler(FieldError, handle_field_error)
    app.add_exception_handler(ServiceClosing, handle_service_closing)
    app.add_exception_handler(ClientGone, handle_client_gone)
    app.add_exception_handler(DeadlineExceeded, handle_deadline)
