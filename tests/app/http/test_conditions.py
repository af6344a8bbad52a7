"""Conditioned models (sex and year of birth) over HTTP: /models lists each model's conditions,
/generate, /next-char and /score take `sex` and `year`, seeds reproduce with conditions, and a
condition a model does not take, or a value it does not allow, is a 422 naming the field. The
service's score of a name under a condition is the training's own loss for that item: the two
place the condition token alike."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import REPO_MODELS, tiny_models
from tests.conftest import era_sample
from training.corpus import read_era
from training.data import Conditioner, Corpus, Encoded, item_losses

pytestmark = pytest.mark.anyio
ERA = REPO_MODELS.parent / "resources" / "names-era.tsv.gz"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with `names` and a tiny conditioned model, `era`, trained on every 40th line of
    the names-era corpus."""
    work = tmp_path_factory.mktemp("era")
    return tiny_models(work, era_sample(work, 40), "era")


async def test_models_list_the_conditions(served: httpx.AsyncClient) -> None:
    era = (await served.get("/models/era")).json()["conditions"]
    assert era["fields"]["sex"]["values"] == ["F", "M"]
    assert era["fields"]["sex"]["pairs"] == {"neutral": ["F", "M"]}
    assert (era["fields"]["year"]["min"], era["fields"]["year"]["max"]) == (1880, 2024)
    assert era["factors"]["decade"][0] == 1880 and "left out" in era["absent"]
    assert (await served.get("/models/names")).json()["conditions"] is None


async def test_generate_with_a_condition_reproduces_and_echoes_it(served: httpx.AsyncClient) -> None:
    body = {"model": "era", "n": 20, "seed": 5, "sex": "f", "year": 1925}
    a = (await served.post("/generate", json=body)).json()
    b = (await served.get("/generate", params=body)).json()
    again = (await served.post("/generate", json=body)).json()
    assert a == b == again and a["count"] == 20
    assert a["condition"] == {"sex": "F", "decade": 1920}
    boys = (await served.post("/generate", json={**body, "sex": "M"})).json()
    plain = (await served.post("/generate", json={"model": "era", "n": 20, "seed": 5})).json()
    assert boys["names"] != a["names"] and plain["names"] != a["names"] and plain["condition"] is None
    sex_only = (await served.post("/generate", json={"model": "era", "n": 3, "seed": 5, "sex": "M"})).json()
    assert sex_only["condition"] == {"sex": "M"}
    same_decade = (await served.post("/generate", json={**body, "year": 1929})).json()
    assert same_decade["names"] == a["names"]  # a year is used as its decade


async def test_next_char_and_score_take_conditions(served: httpx.AsyncClient) -> None:
    fields = {"model": "era", "sex": "F", "year": 1950}
    dist = (await served.post("/next-char", json={**fields, "prefix": "ma"})).json()
    assert dist["condition"] == {"sex": "F", "decade": 1950}
    assert math.isclose(sum(d["prob"] for d in dist["distribution"]), 1.0)
    other = (await served.get("/next-char", params={**fields, "prefix": "ma", "year": 2010})).json()
    assert other["distribution"] != dist["distribution"]
    scores = (await served.post("/score", json={**fields, "names": ["linda"]})).json()
    assert scores["condition"] == {"sex": "F", "decade": 1950} and scores["scores"][0]["logprob"] < 0


async def test_score_equals_the_trainings_loss_for_the_same_item(
    served: httpx.AsyncClient, models: Path
) -> None:
    """The service primes a row with the condition token filling the context, the trainer pads
    with it: the same log-probability either way."""
    from training.conditions import ConditionSpace
    from training.export import load_trained

    model, meta, _ = load_trained(models / "era.pt")
    items, _ = read_era(ERA)
    picked = [it for it in items if it.name in ("linda", "jayden", "mildred")][:6]
    corpus = Corpus.of_era(picked)
    space = ConditionSpace.build(["sex", "decade"])
    stoi = {c: i for i, c in enumerate(meta["vocab"])}
    data = Encoded(corpus.texts, stoi, meta["context_length"], space.value_indices(corpus.factors or []))
    cond = Conditioner(space, len(meta["vocab"]), meta["context_length"], "tokens", 0.0)
    sums, _ = item_losses(model, data, cond)
    for it, nats in zip(picked, sums.tolist(), strict=True):
        body = {"model": "era", "names": [it.name], "sex": it.sex, "year": it.decade}
        logprob = (await served.post("/score", json=body)).json()["scores"][0]["logprob"]
        assert math.isclose(-logprob, nats, rel_tol=1e-4), (it, logprob, nats)


async def test_neutral_is_both_sexes_at_once(served: httpx.AsyncClient) -> None:
    """sex neutral: the next-character distribution is the normalised geometric mean of the girl's
    and the boy's (same year), a name's score adds up its logarithms, and seeded names reproduce,
    alone or beside other requests."""
    fields = {"model": "era", "year": 1995, "prefix": "ja"}
    dist = {}
    for sex in ("F", "M", "neutral"):
        body = (await served.post("/next-char", json={**fields, "sex": sex})).json()
        dist[sex] = {d["char"]: d["prob"] for d in body["distribution"]}
    assert body["condition"] == {"sex": "neutral", "decade": 1990}
    geo = {c: math.sqrt(dist["F"][c] * dist["M"][c]) for c in dist["F"]}
    total = sum(geo.values())
    for c, p in dist["neutral"].items():
        assert math.isclose(p, geo[c] / total, rel_tol=1e-4, abs_tol=1e-9), c
    assert dist["neutral"] != dist["F"] and dist["neutral"] != dist["M"]

    # the score of a name under neutral: the sum of its characters' (and end's) log-probabilities
    name, logprob = "jan", 0.0
    for i in range(len(name) + 1):
        body = {"model": "era", "year": 1995, "sex": "neutral", "prefix": name[:i]}
        step = (await served.post("/next-char", json=body)).json()["distribution"]
        want = name[i] if i < len(name) else "<end>"
        logprob += math.log(next(d["prob"] for d in step if d["char"] == want))
    scored = await served.post(
        "/score", json={"model": "era", "year": 1995, "sex": "NEUTRAL", "names": [name]}
    )
    assert scored.json()["condition"] == {"sex": "neutral", "decade": 1990}
    assert math.isclose(scored.json()["scores"][0]["logprob"], logprob, rel_tol=1e-5)

    gen = {"model": "era", "n": 12, "seed": 3, "sex": "neutral", "year": 2005}
    a = (await served.post("/generate", json=gen)).json()
    b = (await served.get("/generate", params=gen)).json()
    assert a == b and a["count"] == 12 and a["condition"] == {"sex": "neutral", "decade": 2000}
    girls = (await served.post("/generate", json={**gen, "sex": "F"})).json()
    assert girls["names"] != a["names"]
    full = (await served.post("/generate", json={**gen, "full": True, "family_model": "names"})).json()
    assert full["count"] == 12 and full["condition"] == {"sex": "neutral", "decade": 2000}


async def test_score_and_full_names_say_whether_a_real_name_is_neutral(
    served: httpx.AsyncClient, models: Path
) -> None:
    """A model whose data names a gender-neutral rule says, for a name, whether it meets it; one
    that names none says nothing (null)."""
    info = (await served.get("/models/era")).json()
    assert "a third" in info["neutral_rule"] and info["neutral_names"] > 0
    from training.export import load_trained

    _, meta, _ = load_trained(models / "era.pt")
    neutral = meta["neutral"]["names"]
    plain = [n for n in ("mary", "john", "james", "linda") if n not in neutral]
    body = {"model": "era", "names": [neutral[0], *plain]}
    scores = (await served.post("/score", json=body)).json()["scores"]
    assert [s["neutral"] for s in scores] == [True] + [False] * len(plain)
    on_names = (await served.post("/score", json={"model": "names", "names": ["riley"]})).json()
    assert (
        on_names["scores"][0]["neutral"] is None
        and (await served.get("/models/names")).json()["neutral_rule"] is None
    )
    body = {"model": "era", "n": 30, "seed": 1, "full": True, "family_model": "names", "lowercase": True}
    full = (await served.post("/generate", json=body)).json()
    parts = full["full_names"]
    assert len(parts) == 30 and [f["neutral"] for f in parts] == [f["given"] in neutral for f in parts]


@pytest.mark.parametrize(
    "path, params, field, message",
    [
        (
            "/generate",
            {"model": "names", "sex": "F"},
            "sex",
            "model 'names' takes no sex condition; models that take it: era",
        ),
        ("/generate", {"model": "names", "year": 1990}, "year", "takes no year condition"),
        (
            "/generate",
            {"model": "era", "sex": "X"},
            "sex",
            "sex must be F, M or neutral for model 'era', got 'X'",
        ),
        ("/generate", {"model": "era", "sex": "N"}, "sex", "sex must be F, M or neutral"),
        ("/generate", {"model": "era", "year": 1879}, "year", "year must be a year from 1880 to 2024"),
        ("/next-char", {"model": "era", "year": 2025}, "year", "from 1880 to 2024"),
        ("/next-char", {"model": "era", "sex": ""}, "sex", "at least 1 character"),
        ("/generate", {"model": "era", "year": "nineteen"}, "year", "valid integer"),
    ],
)
async def test_bad_conditions_are_422_naming_the_field(
    served: httpx.AsyncClient, path: str, params: dict[str, object], field: str, message: str
) -> None:
    for resp in (await served.get(path, params=params), await served.post(path, json=params)):
        assert resp.status_code == 422, resp.text
        detail = resp.json()["detail"]
        assert detail[0]["loc"][-1] == field and message in detail[0]["msg"], detail
    scored = await served.post("/score", json={"model": "names", "names": ["anna"], "year": 1950})
    assert scored.status_code == 422 and scored.json()["detail"][0]["loc"] == ["body", "year"]
    scored = await served.post("/score", json={"model": "era", "names": ["ann"], "sex": "nonbinary"})
    assert scored.status_code == 422 and "F, M or neutral" in scored.json()["detail"][0]["msg"]
