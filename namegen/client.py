"""
A Python client for the namegen HTTP API, on httpx, typed with the service's own response models.

    from namegen import Client

    with Client("http://127.0.0.1:8000") as api:
        print(api.generate(5, seed=7).names)                   # ['Ramees', 'Naftorio', ...]
        print(api.full_names(3, model="names-female").full_names[0].family)
        print(api.next_char("emm", top_k=3).distribution[0])   # char='a' prob=0.57...
        print(api.score(["emma", "xqzv"]).scores[1].nats_per_char)

Options of both: `timeout` (s, default 30), `retries` (default 3), `headers` (sent with every
request), `on_retry` (called with each refused answer and the wait). `AsyncClient` has the same
methods, awaited. Every method returns the pydantic model the API
declares (GenerateResponse, NextCharResponse, ScoreResponse, ModelList, ModelInfo), parsed from the
answer. A 4xx raises BadRequest (or NotFound for 404) carrying the server's message and the
request's id; an overloaded service's 503 (or 429) is retried after its Retry-After, up to `retries`
times, then raises Overloaded; other failures raise ServerError. Arguments are sent as they are: the
service checks them and says which field is wrong.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypedDict, TypeVar

import httpx
from pydantic import BaseModel
from typing_extensions import Unpack

from app.http.schemas import GenerateResponse, ModelInfo, ModelList, NextCharResponse, ScoreResponse

M = TypeVar("M", bound=BaseModel)
DEFAULT_URL = "http://127.0.0.1:8000"
MAX_RETRY_AFTER_S = 30.0  # a Retry-After above this is waited as this much


class NamegenError(Exception):
    """The service answered with an error: its status, its message (`detail`, a string or a list of
    {loc, msg} naming each bad field) and the request's id (quote it when reporting a problem)."""

    def __init__(self, status: int, detail: Any, request_id: str | None) -> None:
        self.status, self.detail, self.request_id = status, detail, request_id
        super().__init__(f"{status}: {self.message} (request id {request_id})")

    @property
    def message(self) -> str:
        """The detail as one line: each field's error as `field: message`."""
        if isinstance(self.detail, list):
            parts = []
            for e in self.detail:
                loc = (
                    [str(p) for p in e.get("loc", []) if p not in ("query", "body")]
                    if isinstance(e, dict)
                    else []
                )
                msg = e.get("msg", e) if isinstance(e, dict) else e
                parts.append(f"{'.'.join(loc)}: {msg}" if loc else str(msg))
            return "; ".join(parts)
        return str(self.detail)


class BadRequest(NamegenError):
    """4xx: the request was refused (a bad field, an oversized body, ...)."""


class NotFound(BadRequest):
    """404: no such model (the message lists the models there are)."""


class Overloaded(NamegenError):
    """503 or 429 after every retry: the service is busy."""


class ServerError(NamegenError):
    """5xx other than 503: a fault on the service's side."""


def _error(response: httpx.Response) -> NamegenError:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    request_id = response.headers.get("x-request-id")
    status = response.status_code
    kind: type[NamegenError]
    if status == 404:
        kind = NotFound
    elif status in (429, 503):
        kind = Overloaded
    elif 400 <= status < 500:
        kind = BadRequest
    else:
        kind = ServerError
    return kind(status, detail, request_id)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before retrying, for a 503 or 429; None for any other answer."""
    if response.status_code not in (429, 503):
        return None
    try:
        return min(max(float(response.headers.get("retry-after", "1")), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return 1.0


def _body(**fields: Any) -> dict[str, Any]:
    """The request's JSON body: the fields that are set (None: the service's default)."""
    return {k: v for k, v in fields.items() if v is not None}


def _generate_body(n: int, full: bool, options: dict[str, Any]) -> dict[str, Any]:
    return _body(n=n, full=full or None, **options)


class Options(TypedDict, total=False):
    """The options both clients take besides the URL."""

    timeout: float  # seconds for each request (default 30)
    retries: int  # retries of a 503 or 429, each after its Retry-After (default 3)
    headers: dict[str, str]  # sent with every request (an X-Request-ID, an Authorization, ...)
    on_retry: Callable[[httpx.Response, float], None]  # called with the refused answer and the wait


class _Base:
    def __init__(self, options: Options) -> None:
        self.retries = options.get("retries", 3)
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        self.on_retry = options.get("on_retry")
        self._http_options: dict[str, Any] = {
            "timeout": options.get("timeout", 30.0), "headers": options.get("headers"),
        }  # fmt: skip

    def _wait(self, response: httpx.Response, attempt: int) -> float | None:
        """How long to wait before trying again after `response`, the `attempt`-th answer (0 for
        the first); None when it is the answer to return."""
        wait = _retry_after(response)
        if wait is None or attempt >= self.retries:
            return None
        if self.on_retry is not None:
            self.on_retry(response, wait)
        return wait

    @staticmethod
    def _parse(response: httpx.Response, model: type[M]) -> M:
        if response.is_success:
            return model.model_validate_json(response.content)
        raise _error(response)


class Client(_Base):
    """The namegen API over HTTP, blocking. Use as a context manager, or call close()."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        transport: httpx.BaseTransport | None = None,
        **options: Unpack[Options],
    ) -> None:
        super().__init__(options)
        self._http = httpx.Client(base_url=base_url, transport=transport, **self._http_options)

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        for attempt in itertools.count():
            response = self._http.request(method, path, json=body)
            wait = self._wait(response, attempt)
            if wait is None:
                return response
            time.sleep(wait)
        raise AssertionError("unreachable")

    def generate(self, n: int = 10, **options: Any) -> GenerateResponse:
        """n new names. Options are /generate's fields: model, temperature, top_k, top_p, seed,
        prefix, min_length, max_length, unique, novel, safe, lowercase, sex, year."""
        return self._parse(
            self._send("POST", "/generate", _generate_body(n, False, options)), GenerateResponse
        )

    def full_names(self, n: int = 10, **options: Any) -> GenerateResponse:
        """n full names (`.full_names`: each with name, given and family). Options as generate's,
        and family_model (default surnames) and family_prefix."""
        return self._parse(
            self._send("POST", "/generate", _generate_body(n, True, options)), GenerateResponse
        )

    def next_char(self, prefix: str = "", **options: Any) -> NextCharResponse:
        """The next character's distribution after `prefix`. Options: model, temperature, top_k,
        sex, year."""
        return self._parse(
            self._send("POST", "/next-char", _body(prefix=prefix, **options)), NextCharResponse
        )

    def score(self, names: Sequence[str], **options: Any) -> ScoreResponse:
        """How name-like each name is. Options: model, sex, year."""
        return self._parse(self._send("POST", "/score", _body(names=list(names), **options)), ScoreResponse)

    def models(self) -> ModelList:
        """Every loaded model, the default and the service's limits."""
        return self._parse(self._send("GET", "/models"), ModelList)

    def model(self, name: str) -> ModelInfo:
        """One model's metadata and measured quality."""
        return self._parse(self._send("GET", f"/models/{name}"), ModelInfo)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_Base):
    """The namegen API over HTTP, for asyncio. Use as an async context manager, or await aclose()."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[Options],
    ) -> None:
        super().__init__(options)
        self._http = httpx.AsyncClient(base_url=base_url, transport=transport, **self._http_options)

    async def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        for attempt in itertools.count():
            response = await self._http.request(method, path, json=body)
            wait = self._wait(response, attempt)
            if wait is None:
                return response
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def generate(self, n: int = 10, **options: Any) -> GenerateResponse:
        """As Client.generate."""
        response = await self._send("POST", "/generate", _generate_body(n, False, options))
        return self._parse(response, GenerateResponse)

    async def full_names(self, n: int = 10, **options: Any) -> GenerateResponse:
        """As Client.full_names."""
        response = await self._send("POST", "/generate", _generate_body(n, True, options))
        return self._parse(response, GenerateResponse)

    async def next_char(self, prefix: str = "", **options: Any) -> NextCharResponse:
        """As Client.next_char."""
        response = await self._send("POST", "/next-char", _body(prefix=prefix, **options))
        return self._parse(response, NextCharResponse)

    async def score(self, names: Sequence[str], **options: Any) -> ScoreResponse:
        """As Client.score."""
        response = await self._send("POST", "/score", _body(names=list(names), **options))
        return self._parse(response, ScoreResponse)

    async def models(self) -> ModelList:
        return self._parse(await self._send("GET", "/models"), ModelList)

    async def model(self, name: str) -> ModelInfo:
        return self._parse(await self._send("GET", f"/models/{name}"), ModelInfo)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
