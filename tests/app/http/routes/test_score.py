"""POST /score: log-probabilities that agree with /next-char."""

from __future__ import annotations

import math

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_real_names_score_better_than_noise(client: httpx.AsyncClient) -> None:
    resp = await client.post("/score", json={"names": ["Emma", "xqzv", "liam"]})
    assert resp.status_code == 200
    data = resp.json()
    emma, noise, liam = data["scores"]
    assert emma["name"] == "emma" and emma["in_corpus"] and liam["in_corpus"] and not noise["in_corpus"]
    assert emma["nats_per_char"] < 2.0 < 4.0 < noise["nats_per_char"]
    for s in data["scores"]:
        assert math.isclose(s["nats_per_char"], -s["logprob"] / (len(s["name"]) + 1))
        assert math.isclose(s["perplexity"], math.exp(s["nats_per_char"]))


async def test_logprob_is_the_sum_of_next_char_logprobs(client: httpx.AsyncClient) -> None:
    name = "ava"
    total = 0.0
    for i, target in enumerate([*name, "<end>"]):
        dist = (await client.get("/next-char", params={"prefix": name[:i]})).json()["distribution"]
        total += math.log(next(d["prob"] for d in dist if d["char"] == target))
    score = (await client.post("/score", json={"names": [name]})).json()["scores"][0]
    assert math.isclose(score["logprob"], total, rel_tol=1e-6)


async def test_surname_model_prefers_surnames(client: httpx.AsyncClient) -> None:
    body = {"names": ["schmidt", "jaylynn"]}
    sur = (await client.post("/score", json={**body, "model": "surnames"})).json()["scores"]
    first = (await client.post("/score", json=body)).json()["scores"]
    assert sur[0]["logprob"] > first[0]["logprob"] and sur[1]["logprob"] < first[1]["logprob"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"names": []}, "names"),
        ({"names": [""]}, "names[0] must have 1 to 64"),
        ({"names": ["ok", "x" * 65]}, "names[1] must have 1 to 64"),
        ({"names": ["ok", "b4d"]}, "names[1]"),
        ({"names": "emma"}, "names"),
        ({}, "names"),
        ({"names": ["emma"], "model": 3}, "model"),
    ],
)
async def test_bad_input_422(client: httpx.AsyncClient, body: dict[str, object], field: str) -> None:
    resp = await client.post("/score", json=body)
    assert resp.status_code == 422 and field in resp.text


async def test_unknown_model_404(client: httpx.AsyncClient) -> None:
    resp = await client.post("/score", json={"names": ["emma"], "model": "../names"})
    assert resp.status_code == 404
