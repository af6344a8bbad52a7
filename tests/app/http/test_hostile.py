"""Hostile input, class by class: each gets a 4xx that names the field, never a 500, and nothing
a client sends is ever used as a path (a sys audit hook watches every file the process opens or
lists while the request is served)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.app.conftest import app_client

pytestmark = pytest.mark.anyio

MARK = "hostile-7f3a"  # in every hostile name, so a file access that used one would show it
JSON = {"Content-Type": "application/json"}

_watching: list[list[tuple[str, str]]] = []


FS_EVENTS = {
    "open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.chmod",
    "os.chown", "os.link", "os.symlink", "os.truncate", "os.utime", "os.chdir",
}  # fmt: skip


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _watching and (event in FS_EVENTS or event.startswith("shutil.")):
        _watching[-1].append((event, repr(args)))


sys.addaudithook(_audit)  # cannot be removed; it records only inside `fs_events`


@pytest.fixture
def fs_events() -> Iterator[list[tuple[str, str]]]:
    """The filesystem events (open, os.listdir, os.scandir, ...) of this test."""
    events: list[tuple[str, str]] = []
    _watching.append(events)
    try:
        yield events
    finally:
        _watching.remove(events)


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client() as c:
        yield c


def assert_names_field(response: httpx.Response, status: int, *loc: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert any(e["loc"][: len(loc)] == list(loc) for e in detail), detail


PATH_NAMES = [
    f"../{MARK}",
    f"../../../../etc/{MARK}",
    f"/etc/{MARK}",
    f"names/../{MARK}",
    f"%2e%2e%2f{MARK}",
    f"..\\..\\{MARK}",
    f"C:\\{MARK}",
    f"{MARK}\x00.pt",
    f"./{MARK}.pt",
]


@pytest.mark.parametrize("name", PATH_NAMES)
async def test_model_names_like_paths_are_looked_up_never_opened(
    client: httpx.AsyncClient, fs_events: list[tuple[str, str]], name: str
) -> None:
    responses = [
        await client.get("/generate", params={"model": name}),
        await client.post("/generate", json={"model": name}),
        await client.get("/next-char", params={"model": name}),
        await client.post("/next-char", json={"model": name}),
        await client.post("/score", json={"model": name, "names": ["emma"]}),
        await client.get("/models/" + quote(name, safe="")),
        await client.get("/models/" + name.replace("\x00", "%00")),  # as a client might send it
    ]
    for r in responses:
        assert r.status_code in (404, 422), (r.request.url, r.status_code, r.text)
        if r.status_code == 404 and r.request.url.path.startswith(("/generate", "/next-char", "/score")):
            assert "available models: names" in r.json()["detail"]
    assert [e for e in fs_events if MARK in e[1]] == []


async def test_very_long_strings(client: httpx.AsyncClient) -> None:
    long = "a" * 60_000
    assert_names_field(await client.get("/generate", params={"model": long}), 422, "query", "model")
    assert_names_field(await client.post("/generate", json={"prefix": long}), 422, "body", "prefix")
    assert_names_field(await client.get("/next-char", params={"prefix": long}), 422, "query", "prefix")
    assert_names_field(await client.post("/score", json={"names": [long]}), 422, "body")
    r = await client.get("/models/" + long)
    assert r.status_code == 404
    assert len(r.text) < 300  # the name is not echoed back whole
    r = await client.post("/score", json={"names": ["a"] * 200_000})
    assert_names_field(r, 422, "body", "names")
    assert len(r.content) < 2_000  # nor is a huge list


@pytest.mark.parametrize(
    "text",
    ["é", "\x00", "\n", "\t", "\x1b[31m", "\u202e", "😀", "ﬁ", "İ", "a\u0301", "\ufeff", "\ud800"],
    ids=lambda t: repr(t),
)
async def test_non_ascii_and_control_characters(client: httpx.AsyncClient, text: str) -> None:
    # JSON with \\u escapes: a lone surrogate can be written so, though not as UTF-8
    gen_body, score_body = json.dumps({"prefix": text}), json.dumps({"names": ["emma", text + "a"]})
    responses = [
        ("body", await client.post("/generate", content=gen_body, headers=JSON)),
        ("body", await client.post("/score", content=score_body, headers=JSON)),
    ]
    if text != "\ud800":  # a URL cannot carry a lone surrogate (as bytes: test_bytes_that_are_not_utf8)
        responses += [
            ("query", await client.get("/generate", params={"prefix": "a" + text})),
            ("query", await client.get("/next-char", params={"prefix": text})),
        ]
    for where, r in responses:
        assert r.status_code == 422, (text, r.request.url, r.text)
        error = r.json()["detail"][0]
        assert error["loc"][0] == where
        assert error["loc"][1] in ("prefix", "names[1]"), error
        if error.get("type") != "string_unicode":  # a lone surrogate fails as text, before the alphabet
            assert "allowed (any case): 'abcdefghijklmnopqrstuvwxyz'" in error["msg"]


async def test_bytes_that_are_not_utf8(client: httpx.AsyncClient) -> None:
    for raw in ("%ff%fe", "%ed%a0%80", "%c0%af"):  # invalid bytes, a surrogate, an overlong "/"
        r = await client.get(f"/generate?prefix={raw}")
        assert_names_field(r, 422, "query", "prefix")
    r = await client.post("/generate", content=b'{"prefix": "\xff"}', headers=JSON)
    assert r.status_code == 400
    assert "UTF-8 JSON" in r.json()["detail"]


@pytest.mark.parametrize("n", ["0", "-1", "10001", "1000000000", str(10**30), "1.5", "nan", "", "0x10"])
async def test_huge_and_malformed_counts(client: httpx.AsyncClient, n: str) -> None:
    assert_names_field(await client.get("/generate", params={"n": n}), 422, "query", "n")
    body = b'{"n": ' + (n.encode() if n not in ("", "nan", "0x10") else f'"{n}"'.encode()) + b"}"
    assert_names_field(await client.post("/generate", content=body, headers=JSON), 422, "body", "n")


@pytest.mark.parametrize("field", ["temperature", "top_p", "seed", "top_k"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e309", str(2**64)])
async def test_numbers_json_cannot_hold(client: httpx.AsyncClient, field: str, literal: str) -> None:
    """Python's JSON parser accepts NaN and Infinity; echoing them back must not fail."""
    body = f'{{"{field}": {literal}}}'.encode()
    r = await client.post("/generate", content=body, headers=JSON)
    assert_names_field(r, 422, "body", field)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b'{"model":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"names": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["deep-array", "deep-object", "deep-names"],
)
async def test_deeply_nested_json(client: httpx.AsyncClient, body: bytes) -> None:
    for path in ("/generate", "/next-char", "/score"):
        r = await client.post(path, content=body, headers=JSON)
        assert r.status_code in (400, 422), (path, r.status_code, r.text[:200])
        assert "detail" in r.json()


async def test_huge_json_bodies(client: httpx.AsyncClient) -> None:
    many_keys = "{" + ",".join(f'"k{i}": 1' for i in range(80_000)) + "}"  # 950 KB, under the cap
    r = await client.post("/generate", content=many_keys.encode(), headers=JSON)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["body", "k0"]
    assert detail[-1] == {"type": "too_many_errors", "loc": [], "msg": "and 79980 more errors"}
    assert len(r.content) < 5_000  # not an 8 MB list of errors
    r = await client.post("/generate", content=b'{"prefix": "' + b"a" * 2_000_000 + b'"}', headers=JSON)
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]
