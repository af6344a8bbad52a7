"""POST/GET /next-char: a full, sorted distribution that sums to 1."""

from __future__ import annotations

import math

import httpx
import pytest

from tests.app.conftest import app_client

pytestmark = pytest.mark.anyio


async def test_distribution_is_complete_sorted_and_sums_to_one(client: httpx.AsyncClient) -> None:
    resp = await client.get("/next-char", params={"prefix": "emm"})
    assert resp.status_code == 200
    data = resp.json()
    assert data["model"] == "names" and data["prefix"] == "emm"
    dist = data["distribution"]
    chars = [d["char"] for d in dist]
    assert sorted(chars) == sorted(["<end>", *"abcdefghijklmnopqrstuvwxyz"])
    probs = [d["prob"] for d in dist]
    assert probs == sorted(probs, reverse=True)
    assert math.isclose(sum(probs), 1.0, abs_tol=1e-9)
    assert chars[0] in {"a", "i", "e", "y"}  # emma, emmi..., emmett, emmy


async def test_get_and_post_agree_and_case_is_ignored(client: httpx.AsyncClient) -> None:
    a = (await client.get("/next-char", params={"prefix": "JaC"})).json()
    b = (await client.post("/next-char", json={"prefix": "jac"})).json()
    assert a == b and a["prefix"] == "jac"


async def test_empty_prefix_gives_first_letters(client: httpx.AsyncClient) -> None:
    dist = (await client.post("/next-char", json={})).json()["distribution"]
    end = next(d["prob"] for d in dist if d["char"] == "<end>")
    assert end < 0.01  # no name is empty


async def test_end_is_likely_after_a_complete_name(client: httpx.AsyncClient) -> None:
    dist = (await client.post("/next-char", json={"prefix": "olivia"})).json()["distribution"]
    assert dist[0]["char"] == "<end>"


async def test_temperature_and_top_k(client: httpx.AsyncClient) -> None:
    base = (await client.post("/next-char", json={"prefix": "ma"})).json()["distribution"]
    cold = (await client.post("/next-char", json={"prefix": "ma", "temperature": 0.5})).json()["distribution"]
    assert cold[0]["char"] == base[0]["char"] and cold[0]["prob"] > base[0]["prob"]
    top3 = (await client.post("/next-char", json={"prefix": "ma", "top_k": 3})).json()["distribution"]
    assert [d["char"] for d in top3] == [d["char"] for d in base[:3]]  # only the kept characters
    assert math.isclose(sum(d["prob"] for d in top3), 1.0)
    cold3 = (await client.get("/next-char", params={"prefix": "ma", "top_k": 3, "temperature": 0.01})).json()
    assert len(cold3["distribution"]) == 3  # kept even where their probability rounds to 0
    wide = (await client.post("/next-char", json={"prefix": "ma", "top_k": 1000})).json()["distribution"]
    assert wide == base  # a k beyond the vocabulary keeps every character


@pytest.mark.parametrize(
    "params, field",
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": 5e-324}, "temperature"),  # found by schemathesis: a 500 (NaN probabilities)
        ({"top_k": 0}, "top_k"),
        ({"prefix": "a-b"}, "prefix"),
        ({"prefix": "a" * 33}, "prefix"),
        ({"model": ""}, "model"),
    ],
)
async def test_bad_input(client: httpx.AsyncClient, params: dict[str, object], field: str) -> None:
    for resp in (await client.get("/next-char", params=params), await client.post("/next-char", json=params)):
        assert resp.status_code == 422, resp.text
        assert field in [str(p) for e in resp.json()["detail"] for p in e["loc"]]


async def test_unknown_model(client: httpx.AsyncClient) -> None:
    resp = await client.get("/next-char", params={"model": "nope"})
    assert resp.status_code == 404 and "surnames" in resp.json()["detail"]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_body_is_exactly_the_declared_response_model(client: httpx.AsyncClient, method: str) -> None:
    """The JSON is written from a dict (app/http/routes/next_char.py), so check it against
    NextCharResponse: every field, in order, of the right type."""
    from app.http.schemas import NextCharResponse

    fields = {"prefix": "Ann", "top_k": 3, "temperature": 0.7}
    where = {"params": fields} if method == "GET" else {"json": fields}
    resp = await client.request(method, "/next-char", **where)  # type: ignore[arg-type]
    data = resp.json()
    assert list(data) == list(NextCharResponse.model_fields)
    assert NextCharResponse.model_validate(data, strict=True).model_dump(mode="json") == data
    assert [list(d) for d in data["distribution"]] == [["char", "prob"]] * len(data["distribution"])
    assert sum(d["prob"] > 0 for d in data["distribution"]) == 3


async def test_answers_kept_by_request_are_the_computed_ones(client: httpx.AsyncClient) -> None:
    """A prefix asked for again is answered from the cache (NAMEGEN_NEXT_CHAR_CACHE): each answer is
    the one an app without the cache computes, for every field that the key holds."""
    asks = [
        {"prefix": "ma"},
        {"prefix": "MA"},  # the same key: the checked prefix is lowercase
        {"prefix": "ma", "temperature": 0.5},
        {"prefix": "ma", "top_k": 3},
        {"prefix": "ma", "model": "names-male"},
        {"prefix": "mil", "model": "names-era", "sex": "F", "year": 1925},
        {"prefix": "mil", "model": "names-era", "sex": "F", "year": 1985},
        {"prefix": "mil", "model": "names-era", "sex": "M", "year": 1925},
        {"prefix": "mil", "model": "names-era", "sex": "F", "year": 1926},  # 1925's decade
    ]
    first = [(await client.get("/next-char", params=p)).json() for p in asks]
    again = [(await client.get("/next-char", params=p)).json() for p in asks]
    assert again == first
    async with app_client(next_char_cache=0) as uncached:
        computed = [(await uncached.get("/next-char", params=p)).json() for p in asks]
    assert computed == first
    assert first[0] == first[1] and first[5] == first[8]
    assert len({str(a) for a in first[1:8]}) == 7  # no two keys share an answer
    assert [a["condition"] for a in first[5:8]] == [
        {"sex": "F", "decade": 1920},
        {"sex": "F", "decade": 1980},
        {"sex": "M", "decade": 1920},
    ]
