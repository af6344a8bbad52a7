"""namegen.client against a real uvicorn process over HTTP: each method returns the API's typed
answer, Client and AsyncClient agree, errors are typed and carry the server's message and request
id, and a 503 is retried after its Retry-After."""

from __future__ import annotations

import asyncio
import math
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

from app.http.schemas import GenerateResponse, ModelList
from namegen import AsyncClient, BadRequest, Client, NotFound, Overloaded
from tests.support import REPO
from tests.support.server import serve

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with serve(env={"NAMEGEN_TORCH_THREADS": "1"}) as srv:
        yield srv.url


def test_each_method_returns_the_apis_typed_answer(url: str) -> None:
    with Client(url) as api:
        names = api.generate(5, seed=7)
        assert isinstance(names, GenerateResponse) and names.count == 5 and names.seed == 7
        assert names.names == httpx.get(f"{url}/generate", params={"n": 5, "seed": 7}).json()["names"]
        full = api.full_names(3, model="names-female", seed=4, family_prefix="Mc")
        assert full.full_names is not None and len(full.full_names) == 3
        assert all(f.family.startswith("Mc") and f.name == f"{f.given} {f.family}" for f in full.full_names)
        dist = api.next_char("emm", top_k=3)
        assert len(dist.distribution) == 3 and math.isclose(sum(d.prob for d in dist.distribution), 1.0)
        scores = api.score(["emma", "xqzv"]).scores
        assert scores[0].nats_per_char < scores[1].nats_per_char and scores[0].in_corpus
        models = api.models()
        assert isinstance(models, ModelList) and models.default in {m.name for m in models.data}
        assert api.model("surnames").name == "surnames"


def test_the_readme_example_prints_what_the_readme_shows(url: str) -> None:
    readme = (REPO / "README.md").read_text()
    found = re.search(r"```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", readme, re.S)
    assert found, "README.md: no Python example followed by what it prints"
    code, shown = found.groups()
    assert "http://localhost:8000" in code
    run = subprocess.run(
        [sys.executable, "-c", code.replace("http://localhost:8000", url)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == shown, f"README.md shows:\n{shown}\nit printed:\n{run.stdout}"


def test_the_async_client_gives_the_same_answers(url: str) -> None:
    async def run() -> tuple[GenerateResponse, GenerateResponse, list[str]]:
        async with AsyncClient(url) as api:
            a, b = await asyncio.gather(api.generate(8, seed=3, prefix="ka"), api.full_names(2, seed=3))
            models = await api.models()
            return a, b, [m.name for m in models.data]

    a, b, models = asyncio.run(run())
    with Client(url) as api:
        assert a == api.generate(8, seed=3, prefix="ka") and b == api.full_names(2, seed=3)
    assert "names" in models


def test_errors_are_typed_and_carry_the_servers_message_and_request_id(url: str) -> None:
    with Client(url, headers={"X-Request-ID": "trace-7"}) as api:
        with pytest.raises(BadRequest) as bad:
            api.generate(3, prefix="jo3")
        assert bad.value.status == 422 and bad.value.request_id == "trace-7"
        assert "prefix: prefix has characters outside the alphabet" in str(bad.value)
        with pytest.raises(NotFound) as missing:
            api.generate(3, model="klingon")
        assert "available models" in missing.value.message and missing.value.status == 404
        with pytest.raises(BadRequest, match="n: "):
            api.generate(0)


def in_flight(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return float(text.split("\nnamegen_requests_in_flight ")[1].split()[0])


def occupy(url: str) -> threading.Thread:
    """One long request (1,000 names of 64 characters), in flight once this returns."""
    long = {"n": 1000, "min_length": 64, "max_length": 64, "unique": False, "safe": False}
    busy = threading.Thread(target=lambda: httpx.post(f"{url}/generate", json=long, timeout=60))
    busy.start()
    for _ in range(1000):
        if in_flight(url) >= 2:  # it, and this /metrics request
            return busy
    raise AssertionError("the long request never got in flight")


def test_a_503_is_retried_after_its_retry_after() -> None:
    """With one request in flight allowed, a second is refused with 503 and Retry-After: 1; the
    client waits and tries again, and gets its names once the first is done; with no retries
    left, the 503 is raised as Overloaded."""
    with serve(env={"NAMEGEN_MAX_IN_FLIGHT": "1", "NAMEGEN_TORCH_THREADS": "1"}) as srv:
        retried: list[float] = []
        busy = occupy(srv.url)
        with Client(srv.url, on_retry=lambda r, wait: retried.append(wait)) as api:
            assert api.generate(3, seed=1).count == 3
        busy.join()
        assert retried and set(retried) == {1.0}
        busy = occupy(srv.url)
        with Client(srv.url, retries=0) as api, pytest.raises(Overloaded) as refused:
            api.generate(1)
        busy.join()
        assert refused.value.status == 503 and "busy: 1 request is in flight" in refused.value.message
