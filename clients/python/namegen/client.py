"""
A Python client for the namegen HTTP API, on httpx, typed with the API's own response models.

    from namegen import Client

    with Client("http://127.0.0.1:8000") as api:
        print(api.generate(5, seed=7).names)                   # ['Ramsh', 'Juri', ...]
        print(api.full_names(3, model="names-female").full_names[0].family)
        print(api.next_char("emm", top_k=3).distribution[0])   # char='a' prob=0.600...
        print(api.score(["emma", "xqzv"]).scores[1].nats_per_char)

Options of both: `timeout` (s, default 30: the most one call may take, retries and their waits
included), `retries` (default 3), `headers` (sent with every request), `on_retry` (called with each
refused answer and the wait), `max_response_bytes` (default 16 MiB). `AsyncClient` has the same
methods, awaited. Each method's fields are keyword arguments with their types (GenerateOptions,
NextCharOptions, ScoreOptions), so an editor completes and checks them.

Every method returns the pydantic model the API declares (GenerateResponse, NextCharResponse,
ScoreResponse, ModelList, ModelInfo), parsed from the answer. Whatever happens, what is raised is a
NamegenError: a 4xx raises BadRequest (or NotFound for 404) carrying the server's message and the
request's id; an overloaded service's 503 (or 429) is retried after its Retry-After, up to `retries`
times, then raises Overloaded; other 5xx raise ServerError; an answer that is not what the API
declares (not JSON, a redirect, over max_response_bytes) raises BadResponse; a server that cannot be
reached or does not answer within `timeout` raises Unavailable. Arguments are sent as they are: the
service checks them and says which field is wrong.

One module, longer than most: Client and AsyncClient mirror each other method for method, and
share the request building, answer checks and errors above them; apart, each change would be two.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypedDict, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from typing_extensions import Unpack

from namegen.schemas import GenerateResponse, ModelInfo, ModelList, NextCharResponse, ScoreResponse

M = TypeVar("M", bound=BaseModel)
DEFAULT_URL = "http://127.0.0.1:8000"
MAX_RETRY_AFTER_S = 30.0  # a Retry-After above this is waited as this much
MAX_RESPONSE_BYTES = 16 << 20  # n=1,000 full names are about 150 KB
MAX_MESSAGE_CHARS = 1000  # of an error's text, when it is not the API's JSON


class NamegenError(Exception):
    """What went wrong with a call: the HTTP status (None when no answer came), the message
    (`detail`, a string or a list of {loc, msg} naming each bad field) and the request's id (quote
    it when reporting a problem)."""

    def __init__(self, status: int | None, detail: Any, request_id: str | None = None) -> None:
        self.status, self.detail, self.request_id = status, detail, request_id
        where = f" (request id {request_id})" if request_id else ""
        super().__init__(f"{status if status is not None else 'no answer'}: {self.message}{where}")

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
    """5xx other than 503: a fault on the service's side (or on a proxy's in front of it)."""


class BadResponse(NamegenError):
    """An answer that is not what the API declares: a body that does not parse as the declared
    model, a redirect, or more than max_response_bytes."""


class Unavailable(NamegenError):
    """No answer: the server could not be reached, or did not answer within the call's timeout."""


def _cut(text: str) -> str:
    return (
        text if len(text) <= MAX_MESSAGE_CHARS else f"{text[:MAX_MESSAGE_CHARS]}... ({len(text)} characters)"
    )


def _error(status: int, content: bytes, headers: httpx.Headers) -> NamegenError:
    """The error for a non-2xx answer, whatever its body holds."""
    request_id = headers.get("x-request-id")
    try:
        parsed = json.loads(content)
        detail = parsed["detail"] if isinstance(parsed, dict) and "detail" in parsed else _cut(str(parsed))
    except ValueError:
        detail = _cut(content.decode("utf-8", "replace"))
    kind: type[NamegenError]
    if status == 404:
        kind = NotFound
    elif status in (429, 503):
        kind = Overloaded
    elif 400 <= status < 500:
        kind = BadRequest
    elif status >= 500:
        kind = ServerError
    else:  # 1xx, 3xx: the client follows no redirect; point it at the final URL
        location = headers.get("location")
        detail = f"unexpected answer {status}" + (f", redirecting to {location}" if location else "")
        kind = BadResponse
    return kind(status, detail, request_id)


def _retry_after(status: int, headers: httpx.Headers) -> float | None:
    """Seconds to wait before retrying, for a 503 or 429; None for any other answer."""
    if status not in (429, 503):
        return None
    try:
        wait = float(headers.get("retry-after", "1"))
    except ValueError:  # an HTTP date, or nonsense
        return 1.0
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S) if math.isfinite(wait) else 1.0


class GenerateOptions(TypedDict, total=False):
    """/generate's fields besides n (docs/api.md has each one's range)."""

    model: str
    temperature: float
    top_k: int
    top_p: float
    seed: int
    prefix: str
    min_length: int
    max_length: int
    unique: bool
    novel: bool
    safe: bool
    lowercase: bool
    sex: str
    year: int
    country: str


class FullNameOptions(GenerateOptions, total=False):
    family_model: str
    family_prefix: str


class NextCharOptions(TypedDict, total=False):
    model: str
    temperature: float
    top_k: int
    sex: str
    year: int
    country: str


class ScoreOptions(TypedDict, total=False):
    model: str
    sex: str
    year: int
    country: str


class Options(TypedDict, total=False):
    """The options both clients take besides the URL."""

    timeout: float  # seconds one call may take in all, retries included (default 30)
    retries: int  # retries of a 503 or 429, each after its Retry-After (default 3)
    headers: dict[str, str]  # sent with every request (an X-Request-ID, an Authorization, ...)
    on_retry: Callable[[httpx.Response, float], None]  # called with the refused answer and the wait
    max_response_bytes: int  # a longer answer raises BadResponse (default 16 MiB)


def _body(fields: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON body: the fields that are set (None: the service's default)."""
    return {k: v for k, v in fields.items() if v is not None}


def _model_path(name: str) -> str:
    """/models/<name>, the name one escaped path segment: "../metrics" stays a model name."""
    segment = quote(name, safe="")
    if segment in (".", ".."):  # dot segments are resolved away by URL rules, even escaped-looking
        segment = segment.replace(".", "%2E")
    return f"/models/{segment}"


class _Call:
    """One call's deadline and the answer it is building, shared by both clients."""

    def __init__(self, timeout: float, limit: int) -> None:
        self.deadline = time.monotonic() + timeout
        self.limit = limit
        self.size = 0  # bytes of the answer being read

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Unavailable(None, "no answer within the call's timeout")
        return left

    def add(self, chunks: list[bytes], chunk: bytes) -> None:
        """One more piece of the answer: within the size limit and the deadline, or an error."""
        if not chunks:
            self.size = 0  # a new answer (after a retry)
        chunks.append(chunk)
        self.size += len(chunk)
        if self.size > self.limit:
            raise BadResponse(None, f"the answer is over {self.limit} bytes (max_response_bytes)")
        self.left()


class _Base:
    def __init__(self, options: Options) -> None:
        self.retries = options.get("retries", 3)
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        self.timeout = float(options.get("timeout", 30.0))
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        self.max_response_bytes = options.get("max_response_bytes", MAX_RESPONSE_BYTES)
        self.on_retry = options.get("on_retry")
        self._http_options: dict[str, Any] = {
            "timeout": self.timeout, "headers": options.get("headers"), "follow_redirects": False,
        }  # fmt: skip

    def _wait(self, response: httpx.Response, attempt: int, call: _Call) -> float | None:
        """How long to wait before trying again after `response`, the `attempt`-th answer (0 for
        the first); None when it is the answer to return (also when the wait would pass the call's
        deadline)."""
        wait = _retry_after(response.status_code, response.headers)
        if wait is None or attempt >= self.retries or wait >= call.deadline - time.monotonic():
            return None
        if self.on_retry is not None:
            self.on_retry(response, wait)
        return wait

    @staticmethod
    def _parse(response: httpx.Response, content: bytes, model: type[M]) -> M:
        if not response.is_success:
            raise _error(response.status_code, content, response.headers)
        try:
            return model.model_validate_json(content)
        except ValidationError as e:
            detail = f"the answer is not a {model.__name__}: {_cut(str(e))}"
            raise BadResponse(response.status_code, detail, response.headers.get("x-request-id")) from None


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

    def _request(self, method: str, path: str, body: dict[str, Any] | None, model: type[M]) -> M:
        call = _Call(self.timeout, self.max_response_bytes)
        try:
            for attempt in itertools.count():
                with self._http.stream(
                    method, path, json=body, timeout=httpx.Timeout(call.left())
                ) as response:
                    chunks: list[bytes] = []
                    for chunk in response.iter_raw():
                        call.add(chunks, chunk)
                    wait = self._wait(response, attempt, call)
                    if wait is None:
                        return self._parse(response, _decoded(response, chunks), model)
                time.sleep(wait)
        except httpx.TimeoutException:
            raise Unavailable(None, "no answer within the call's timeout") from None
        except httpx.TransportError as e:
            raise Unavailable(None, f"cannot reach {self._http.base_url}: {e}") from None
        raise AssertionError("unreachable")

    def generate(self, n: int = 10, **options: Unpack[GenerateOptions]) -> GenerateResponse:
        """n new names."""
        return self._request("POST", "/generate", _body({"n": n, **options}), GenerateResponse)

    def full_names(self, n: int = 10, **options: Unpack[FullNameOptions]) -> GenerateResponse:
        """n full names (`.full_names`: each with name, given and family)."""
        body = _body({"n": n, "full": True, **options})
        return self._request("POST", "/generate", body, GenerateResponse)

    def next_char(self, prefix: str = "", **options: Unpack[NextCharOptions]) -> NextCharResponse:
        """The next character's distribution after `prefix`."""
        return self._request("POST", "/next-char", _body({"prefix": prefix, **options}), NextCharResponse)

    def score(self, names: Sequence[str], **options: Unpack[ScoreOptions]) -> ScoreResponse:
        """How name-like each name is."""
        return self._request("POST", "/score", _body({"names": list(names), **options}), ScoreResponse)

    def models(self) -> ModelList:
        """Every loaded model, the default and the service's limits."""
        return self._request("GET", "/models", None, ModelList)

    def model(self, name: str) -> ModelInfo:
        """One model's metadata and measured quality."""
        return self._request("GET", _model_path(name), None, ModelInfo)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _decoded(response: httpx.Response, chunks: list[bytes]) -> bytes:
    """The body from its raw chunks, content-encoding undone (the service sends none, a proxy may)."""
    raw = b"".join(chunks)
    if not response.headers.get("content-encoding"):
        return raw
    decoded = httpx.Response(response.status_code, headers=response.headers, content=raw)
    return decoded.read()


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

    async def _request(self, method: str, path: str, body: dict[str, Any] | None, model: type[M]) -> M:
        call = _Call(self.timeout, self.max_response_bytes)
        try:
            async with asyncio.timeout(self.timeout):
                for attempt in itertools.count():
                    async with self._http.stream(method, path, json=body) as response:
                        chunks: list[bytes] = []
                        async for chunk in response.aiter_raw():
                            call.add(chunks, chunk)
                        wait = self._wait(response, attempt, call)
                        if wait is None:
                            return self._parse(response, _decoded(response, chunks), model)
                    await asyncio.sleep(wait)
        except (TimeoutError, httpx.TimeoutException):
            raise Unavailable(None, "no answer within the call's timeout") from None
        except httpx.TransportError as e:
            raise Unavailable(None, f"cannot reach {self._http.base_url}: {e}") from None
        raise AssertionError("unreachable")

    async def generate(self, n: int = 10, **options: Unpack[GenerateOptions]) -> GenerateResponse:
        """As Client.generate."""
        return await self._request("POST", "/generate", _body({"n": n, **options}), GenerateResponse)

    async def full_names(self, n: int = 10, **options: Unpack[FullNameOptions]) -> GenerateResponse:
        """As Client.full_names."""
        body = _body({"n": n, "full": True, **options})
        return await self._request("POST", "/generate", body, GenerateResponse)

    async def next_char(self, prefix: str = "", **options: Unpack[NextCharOptions]) -> NextCharResponse:
        """As Client.next_char."""
        body = _body({"prefix": prefix, **options})
        return await self._request("POST", "/next-char", body, NextCharResponse)

    async def score(self, names: Sequence[str], **options: Unpack[ScoreOptions]) -> ScoreResponse:
        """As Client.score."""
        body = _body({"names": list(names), **options})
        return await self._request("POST", "/score", body, ScoreResponse)

    async def models(self) -> ModelList:
        return await self._request("GET", "/models", None, ModelList)

    async def model(self, name: str) -> ModelInfo:
        return await self._request("GET", _model_path(name), None, ModelInfo)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
