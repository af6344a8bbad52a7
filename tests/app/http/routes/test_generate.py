"""POST/GET /generate: reproducible sampling, every constraint, and every bad input."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.app.conftest import app_client
from tests.support import RESOURCES

pytestmark = pytest.mark.anyio


def field_of(resp: httpx.Response) -> list[str]:
    """The field names a 422 response points at."""
    return [str(part) for err in resp.json()["detail"] for part in err["loc"]]


async def test_post_and_get_agree_and_seed_reproduces(client: httpx.AsyncClient) -> None:
    body = {"model": "names", "n": 12, "seed": 7, "temperature": 0.9, "top_k": 10, "top_p": 0.95}
    a = await client.post("/generate", json=body)
    b = await client.get("/generate", params=body)
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json()
    data = a.json()
    assert data["model"] == "names" and data["seed"] == 7 and data["count"] == 12 == len(data["names"])
    assert data["complete"] is True and data["note"] is None
    assert all(n[0].isupper() and n[1:].islower() for n in data["names"])
    other = await client.post("/generate", json={**body, "seed": 8})
    assert other.json()["names"] != data["names"]


async def test_echoed_seed_reproduces_a_seedless_request(client: httpx.AsyncClient) -> None:
    # the first request of its kind samples its own; the later ones are answered from results
    # sampled ahead (app/inference/pool.py), and each must be what its seed gives
    seen: set[int] = set()
    for params in [{"n": 8}] * 12 + [{"n": 1, "model": "names-male", "lowercase": True}] * 12:
        first = (await client.get("/generate", params=params)).json()
        again = (await client.get("/generate", params={**params, "seed": first["seed"]})).json()
        assert again == first
        seen.add(first["seed"])
        await asyncio.sleep(0.01)  # time for a refill
    assert len(seen) == 24
    metrics = (await client.get("/metrics")).text
    assert 'namegen_generate_pooled_total{model="names"}' in metrics
    assert 'namegen_generate_pooled_total{model="names-male"}' in metrics


async def test_with_no_pool_a_seedless_request_samples_its_own() -> None:
    async with app_client(pool_size=0) as client:
        for _ in range(3):
            first = (await client.get("/generate", params={"n": 2})).json()
            again = (await client.get("/generate", params={"n": 2, "seed": first["seed"]})).json()
            assert again == first
        assert "namegen_generate_pooled_total{" not in (await client.get("/metrics")).text


async def test_defaults_unique_capitalized_default_model(client: httpx.AsyncClient) -> None:
    data = (await client.get("/generate", params={"seed": 1})).json()
    assert data["model"] == "names" and data["count"] == 10
    assert len(set(data["names"])) == 10
    lower = (await client.get("/generate", params={"seed": 1, "lowercase": True})).json()
    assert lower["names"] == [n.lower() for n in data["names"]]


async def test_a_vanishing_top_p_samples_the_likeliest_names(client: httpx.AsyncClient) -> None:
    """top_p=1e-46 is valid (> 0) but 0 in float32: it must mean "only the likeliest character",
    the same names as top_k=1, never empty ones, with or without min_length."""
    for extra in ({}, {"min_length": 4}):
        body = {"n": 1, "seed": 5, "unique": False, **extra}
        tiny = (await client.post("/generate", json={**body, "top_p": 1e-46})).json()
        greedy = (await client.post("/generate", json={**body, "top_k": 1})).json()
        assert tiny["names"] == greedy["names"]
        assert len(tiny["names"][0]) >= max(1, extra.get("min_length", 1))


async def test_prefix_is_case_insensitive_and_respected(client: httpx.AsyncClient) -> None:
    data = (await client.post("/generate", json={"n": 20, "prefix": "MaR", "seed": 3})).json()
    assert data["count"] == 20
    assert all(n.startswith("Mar") for n in data["names"])
    same = (await client.post("/generate", json={"n": 20, "prefix": "mar", "seed": 3})).json()
    assert same["names"] == data["names"]


async def test_extreme_temperatures_still_give_real_names(client: httpx.AsyncClient) -> None:
    for temperature in (0.01, 5.0):
        data = (await client.get("/generate", params={"n": 20, "temperature": temperature, "seed": 9})).json()
        assert data["count"] >= 1 and all(len(n) >= 1 and n.isalpha() for n in data["names"])
    dist = (await client.get("/next-char", params={"prefix": "ma", "temperature": 0.01})).json()
    assert dist["distribution"][0]["prob"] > 0.99


async def test_length_limits(client: httpx.AsyncClient) -> None:
    data = (
        await client.post("/generate", json={"n": 50, "min_length": 6, "max_length": 7, "seed": 5})
    ).json()
    assert data["count"] == 50
    assert all(6 <= len(n) <= 7 for n in data["names"])


async def test_novel_names_are_not_in_the_corpus(client: httpx.AsyncClient) -> None:
    data = (await client.post("/generate", json={"n": 40, "novel": True, "seed": 11})).json()
    assert data["count"] == 40
    scores = (await client.post("/score", json={"names": data["names"]})).json()["scores"]
    assert not any(s["in_corpus"] for s in scores)
    plain = (await client.post("/generate", json={"n": 200, "seed": 11})).json()
    plain_scores = (await client.post("/score", json={"names": plain["names"]})).json()["scores"]
    assert any(s["in_corpus"] for s in plain_scores)  # without novel, real names do come out


async def test_unique_false_allows_repeats(client: httpx.AsyncClient) -> None:
    body = {"n": 60, "temperature": 0.2, "seed": 2, "model": "names-male"}
    repeats = (await client.post("/generate", json={**body, "unique": False})).json()["names"]
    assert len(set(repeats)) < len(repeats)
    unique = (await client.post("/generate", json=body)).json()
    assert len(set(unique["names"])) == len(unique["names"])


async def test_impossible_constraints_return_what_was_found_and_say_so(client: httpx.AsyncClient) -> None:
    # the only name of at most 4 letters starting "emma" is "emma" itself, which is in the corpus
    resp = await client.post("/generate", json={"n": 5, "prefix": "emma", "max_length": 4, "novel": True})
    data = resp.json()
    assert resp.status_code == 200
    assert data["count"] == 0 and data["names"] == [] and data["complete"] is False
    assert data["rounds"] >= 1 and data["rejected"]["missing"] == 5 and "0 of 5" in data["note"]


async def test_every_model_generates(client: httpx.AsyncClient) -> None:
    for model in ["names", "names-female", "names-male", "surnames"]:
        data = (await client.get("/generate", params={"model": model, "n": 3, "seed": 0})).json()
        assert data["model"] == model and data["count"] == 3


@pytest.mark.parametrize(
    "params, field",
    [
        ({"n": 0}, "n"),
        ({"n": 10001}, "n"),
        ({"n": "ten"}, "n"),
        ({"temperature": 0}, "temperature"),
        ({"temperature": -1}, "temperature"),
        ({"temperature": 5e-324}, "temperature"),  # found by schemathesis: overflowed to NaN
        ({"temperature": 5.5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": 0}, "top_k"),
        ({"seed": -1}, "seed"),
        ({"min_length": 0}, "min_length"),
        ({"prefix": "x" * 65}, "prefix"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_fields_get_422_naming_the_field(
    client: httpx.AsyncClient, params: dict[str, object], field: str
) -> None:
    for resp in (await client.get("/generate", params=params), await client.post("/generate", json=params)):
        assert resp.status_code == 422, resp.text
        assert field in field_of(resp)


async def test_min_length_above_max_length(client: httpx.AsyncClient) -> None:
    resp = await client.post("/generate", json={"min_length": 6, "max_length": 3})
    assert resp.status_code == 422
    assert "min_length (6) must not be greater than max_length (3)" in resp.text


async def test_prefix_longer_than_max_length(client: httpx.AsyncClient) -> None:
    resp = await client.post("/generate", json={"prefix": "anna", "max_length": 3})
    assert resp.status_code == 422 and "max_length" in field_of(resp)


async def test_out_of_alphabet_prefix_lists_the_alphabet(client: httpx.AsyncClient) -> None:
    for prefix in ["an1", "jo se", "zoë", "a.b"]:
        resp = await client.get("/generate", params={"prefix": prefix})
        assert resp.status_code == 422
        assert field_of(resp) == ["query", "prefix"]
        assert "abcdefghijklmnopqrstuvwxyz" in resp.json()["detail"][0]["msg"]


async def test_unknown_model_404_names_the_models(client: httpx.AsyncClient) -> None:
    resp = await client.post("/generate", json={"model": "klingon"})
    assert resp.status_code == 404
    msg = resp.json()["detail"]
    assert "klingon" in msg and "names, names-era, names-female, names-male, surnames" in msg


@pytest.mark.parametrize("content", [b"{bad json", b"[1, 2]", b'"n"', b"", b'{"n": 3,}'])
async def test_malformed_json_is_422(client: httpx.AsyncClient, content: bytes) -> None:
    resp = await client.post("/generate", content=content, headers={"content-type": "application/json"})
    assert resp.status_code == 422


async def test_settings_lower_the_limits() -> None:
    async with app_client(max_n=20, max_prefix_length=3) as client:
        resp = await client.get("/generate", params={"n": 21})
        assert resp.status_code == 422 and "between 1 and 20" in resp.text and "n" in field_of(resp)
        resp = await client.get("/generate", params={"prefix": "abcd"})
        assert resp.status_code == 422 and "at most 3 characters" in resp.text
        assert (await client.get("/generate", params={"n": 20, "prefix": "abc"})).status_code == 200
        limits = (await client.get("/models")).json()["limits"]
        assert limits["max_n"] == 20 and limits["max_prefix_length"] == 3


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_body_is_exactly_the_declared_response_model(client: httpx.AsyncClient, method: str) -> None:
    """The handler's GenerateResponse is serialised by pydantic-core directly (app/http/deps.py
    model_response), bypassing FastAPI's own check: the body is the documented model, every field in
    order, of the right type."""
    from app.http.schemas import GenerateResponse

    fields = {"n": 3, "seed": 5, "prefix": "emma", "max_length": 5, "novel": True}
    where = {"params": fields} if method == "GET" else {"json": fields}
    resp = await client.request(method, "/generate", **where)  # type: ignore[arg-type]
    data = resp.json()
    assert list(data) == list(GenerateResponse.model_fields)
    assert GenerateResponse.model_validate(data, strict=True).model_dump(mode="json") == data
    assert resp.headers["content-type"] == "application/json"


async def test_names_with_an_obscenity_are_left_out_unless_safe_is_false(client: httpx.AsyncClient) -> None:
    body = {"n": 5, "prefix": "fuck", "seed": 2, "unique": False}
    safe = (await client.post("/generate", json=body)).json()
    assert safe["names"] == [] and safe["complete"] is False
    assert safe["rejected"]["unsafe"] == safe["sampled"] > 0 and safe["rejected"]["missing"] == 5
    unsafe = (await client.post("/generate", json={**body, "safe": False})).json()
    assert unsafe["count"] == 5 and all(n.startswith("Fuck") for n in unsafe["names"])
    assert "unsafe" not in unsafe["rejected"]


async def test_every_name_returned_by_default_passes_the_filter(client: httpx.AsyncClient) -> None:
    from app.inference.safety import SafetyFilter

    data = (await client.get("/generate", params={"n": 1000, "seed": 11, "unique": False})).json()
    check = SafetyFilter.from_packages(())  # no allowlist: real names it would refuse are fine
    refused = [n for n in data["names"] if check.refuses(n)]
    real = {
        s for corpus in ("names-all.txt", "surnames.txt") for s in (RESOURCES / corpus).read_text().split()
    }
    assert all(n.lower() in real for n in refused), refused


async def test_full_names_reproduce_and_keep_their_parts(client: httpx.AsyncClient) -> None:
    body = {"model": "names-female", "n": 6, "full": True, "seed": 4}
    post = (await client.post("/generate", json=body)).json()
    get = (await client.get("/generate", params=body)).json()
    assert post == get and post["count"] == 6 and post["family_model"] == "surnames"
    assert [f["name"] for f in post["full_names"]] == post["names"]
    for f in post["full_names"]:
        assert f["name"] == f"{f['given']} {f['family']}" and f["given"][0].isupper()
    given = (await client.post("/generate", json={"model": "names-female", "n": 6, "seed": 4})).json()
    assert [f["given"] for f in post["full_names"]] == given["names"]  # the given part is the plain request's
    other = (await client.post("/generate", json={**body, "seed": 5})).json()
    assert other["names"] != post["names"]
    # the family names are not the given names' random stream over again
    assert [f["family"][0] for f in post["full_names"]] != [f["given"][0] for f in post["full_names"]]


async def test_full_names_apply_novel_unique_and_prefixes_to_each_part(client: httpx.AsyncClient) -> None:
    models = (await client.get("/models")).json()
    assert {m["name"] for m in models["data"]} >= {"names", "surnames"}
    body = {"n": 40, "full": True, "novel": True, "seed": 9, "prefix": "ma", "family_prefix": "Mc"}
    data = (await client.post("/generate", json=body)).json()
    assert data["count"] == 40
    given = [f["given"].lower() for f in data["full_names"]]
    family = [f["family"].lower() for f in data["full_names"]]
    assert len(set(given)) == 40 and len(set(family)) == 40  # unique: each part, so the whole
    assert all(g.startswith("ma") for g in given) and all(f.startswith("mc") for f in family)
    for part, model in ((given, "names"), (family, "surnames")):
        score = (await client.post("/score", json={"model": model, "names": part})).json()["scores"]
        assert not any(s["in_corpus"] for s in score), model  # novel: neither part is a real one


async def test_a_full_name_costs_two_batched_generations(monkeypatch: pytest.MonkeyPatch) -> None:
    import app.inference.batching as batching

    planned: list[list[str]] = []
    real = batching.plan_batch

    def spy(pieces):  # type: ignore[no-untyped-def]
        planned.append([p.task.model.name for p in pieces])  # a batcher's batch: one model's tasks
        return real(pieces)

    monkeypatch.setattr(batching, "plan_batch", spy)
    async with app_client() as client:
        planned.clear()  # warm-up batches
        params = {"n": 200, "full": True, "safe": False, "unique": False, "seed": 1}
        data = (await client.get("/generate", params=params)).json()
    assert data["count"] == 200 and data["rounds"] == 1
    assert sorted(p[0] for p in planned) == ["names", "surnames"]  # one batch each, not 200 calls


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"full": True, "family_model": "klingon"}, "family_model"),
        ({"family_prefix": "Mc"}, "family_prefix"),
        ({"family_model": "surnames"}, "family_model"),
        ({"full": True, "family_prefix": "Mc3"}, "family_prefix"),
        ({"full": True, "family_prefix": "x" * 40}, "family_prefix"),
    ],
)
async def test_bad_full_name_fields_are_422_naming_the_field(
    client: httpx.AsyncClient, params: dict[str, object], field: str
) -> None:
    resp = await client.get("/generate", params=params)
    assert resp.status_code == 422 and field in field_of(resp), resp.json()


async def test_json_types_are_taken_as_they_are(client: httpx.AsyncClient) -> None:
    """A JSON boolean is no count and a number no boolean: `{"n": true}` used to mean n=1. The GET
    form, where every value is text, still parses "5" and "false"."""
    for body, field in (
        ({"n": True}, "n"),
        ({"n": "5"}, "n"),
        ({"unique": 1}, "unique"),
        ({"seed": 1.0}, "seed"),
        ({"prefix": 5}, "prefix"),
    ):
        resp = await client.post("/generate", json=body)
        assert resp.status_code == 422 and field in field_of(resp), body
    ok = await client.get("/generate", params={"n": "5", "unique": "false", "temperature": "1"})
    assert ok.status_code == 200 and ok.json()["count"] == 5
    assert (await client.post("/generate", json={"n": 2, "temperature": 1})).status_code == 200


async def test_text_is_normalised_once_then_checked(client: httpx.AsyncClient) -> None:
    """NFC first, then the alphabet check: a decomposed é is reported as é (not as a bare
    combining accent), a letter whose lowercase grows (İ) is refused as itself, and a composed
    capital is matched without regard to case."""
    nfd = await client.get("/generate", params={"prefix": "Jose\u0301"})
    assert nfd.status_code == 422
    assert "'é'" in nfd.json()["detail"][0]["msg"] and "\u0301" not in nfd.json()["detail"][0]["msg"]
    dotted = await client.get("/generate", params={"prefix": "\u0130sa"})
    assert dotted.status_code == 422 and "'\u0130'" in dotted.json()["detail"][0]["msg"]
    score = await client.post("/score", json={"names": ["Jose\u0301"]})
    assert score.status_code == 422 and "'é'" in score.json()["detail"][0]["msg"]
    # the Kelvin sign is, under NFC, the letter K (Unicode's canonical equivalence): it is read as k
    kelvin = (await client.get("/next-char", params={"prefix": "\u212aa"})).json()
    assert kelvin["prefix"] == "ka"


async def test_a_girls_and_a_boys_list_of_full_names_get_their_own_surnames(
    client: httpx.AsyncClient,
) -> None:
    """One seed, two given-name models: the family part's random numbers follow what the given
    part is drawn from, so the two lists do not share their surnames."""
    lists = []
    for model in ("names-female", "names-male"):
        body = {"model": model, "n": 20, "full": True, "seed": 11, "unique": False}
        data = (await client.post("/generate", json=body)).json()
        lists.append([p["family"] for p in data["full_names"]])
    assert sum(a == b for a, b in zip(*lists, strict=True)) < 5


async def test_slurs_that_are_real_names_and_prank_full_names_stay_out(client: httpx.AsyncClient) -> None:
    """Coon is a US surname and still a slur; Mike Hunt is two harmless parts and a prank."""
    coon = {"model": "surnames", "prefix": "coon", "max_length": 4, "n": 1, "seed": 1}
    assert (await client.get("/generate", params=coon)).json()["names"] == []
    wigger = {"model": "names", "prefix": "wigger", "max_length": 6, "n": 1, "seed": 1}
    assert (await client.get("/generate", params=wigger)).json()["names"] == []
    prank = {"full": True, "prefix": "mike", "family_prefix": "hunt", "min_length": 4, "max_length": 4,
             "n": 3, "seed": 1}  # fmt: skip
    data = (await client.get("/generate", params=prank)).json()
    assert "Mike Hunt" not in data["names"] and data["rejected"].get("unsafe", 0) > 0
    unsafe = (await client.get("/generate", params={**prank, "safe": False})).json()
    assert "Mike Hunt" in unsafe["names"] and unsafe["safe"] is False


async def test_an_operator_can_force_the_filter_on() -> None:
    async with app_client(force_safe=True) as forced:
        body = {"n": 5, "prefix": "fuck", "seed": 2, "unique": False, "safe": False}
        data = (await forced.post("/generate", json=body)).json()
        assert data["names"] == [] and data["safe"] is True and data["rejected"]["unsafe"] > 0


async def test_one_request_costs_at_most_its_budget_of_characters(client: httpx.AsyncClient) -> None:
    """The worst request (1,000 names of exactly 64 characters at temperature 5) stops at the
    request's budget of characters, and with full both parts share that one budget."""
    worst = {"n": 1000, "min_length": 64, "max_length": 64, "temperature": 5, "seed": 1}
    data = (await client.post("/generate", json=worst)).json()
    assert data["stopped"] == "steps" and data["sampled"] * 65 <= 100_000
    assert "NAMEGEN_MAX_STEPS" in data["note"]
    full = (await client.post("/generate", json={**worst, "full": True})).json()
    assert full["stopped"] == "steps" and full["sampled"] * 65 <= 100_000


async def test_a_score_waiting_past_its_deadline_is_503() -> None:
    """/score cannot answer in part: still queued at NAMEGEN_SCORE_TIMEOUT_S, it gets a 503 with
    Retry-After, and the service goes on."""
    import asyncio

    async with app_client(score_timeout_s=0.001, batch_threads=1) as c:
        long = {"n": 1000, "min_length": 64, "max_length": 64, "unique": False, "safe": False}
        busy = asyncio.ensure_future(c.post("/generate", json={**long, "model": "names"}))
        await asyncio.sleep(0.05)
        resp = await c.post("/score", json={"names": ["emma"] * 100})
        assert (await busy).status_code == 200
    assert resp.status_code == 503 and resp.headers["retry-after"] == "1"
    assert "deadline" in resp.json()["detail"]
