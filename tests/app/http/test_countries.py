"""A model conditioned on country and sex over HTTP: /models lists its countries, /generate,
/next-char and /score take `country` in any case, names come in the country's own letters
(Cyrillic capitalised, Hebrew as it is written), and a country the model does not take is a 422
that lists the ones it does. The model is a tiny one trained on every 40th line of names-world."""

from __future__ import annotations

import gzip
import math
import unicodedata
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import tiny_models
from tests.conftest import world_sample
from training.countries import CODES

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("world")
    return tiny_models(work, world_sample(work, 40), "world", conditions="sex,country")


async def test_models_list_the_countries(served: httpx.AsyncClient) -> None:
    conditions = (await served.get("/models/world")).json()["conditions"]
    assert conditions["fields"]["country"]["values"] == list(CODES)
    assert conditions["fields"]["sex"]["values"] == ["F", "M"]


async def test_models_give_each_countrys_source_and_names(models: Path, served: httpx.AsyncClient) -> None:
    countries = (await served.get("/models/world")).json()["corpus"]["countries"]
    assert sorted(countries) == list(CODES)
    france, israel = countries["FR"], countries["IL"]
    assert france["office"].startswith("INSEE") and france["licence"].startswith("Licence Ouverte")
    assert "1900-2019" in france["counts"] and israel["licence"] == "CC0 1.0"
    lines = gzip.decompress((models.parent / "world.tsv.gz").read_bytes()).decode().splitlines()
    assert france["female"] == sum(line.split("\t")[1:3] == ["FR", "F"] for line in lines) > 0
    assert (await served.get("/models/names")).json()["corpus"]["countries"] is None


async def test_generate_takes_a_country_in_any_case_and_reproduces(served: httpx.AsyncClient) -> None:
    body = {"model": "world", "n": 8, "seed": 4, "sex": "F", "country": "fr"}
    a = (await served.post("/generate", json=body)).json()
    b = (await served.get("/generate", params={**body, "country": "FR"})).json()
    assert a == b and a["count"] == 8 and a["condition"] == {"sex": "F", "country": "FR"}
    russian = (await served.post("/generate", json={**body, "country": "RU"})).json()
    assert russian["names"] != a["names"] and russian["condition"]["country"] == "RU"


async def test_a_name_that_mixes_scripts_is_rejected(served: httpx.AsyncClient) -> None:
    """No real name mixes Cyrillic and Latin letters: a sampled one that does is rejected and
    replaced (the tiny model, trained for 60 steps, mixes them often)."""
    body = {"model": "world", "n": 200, "seed": 3, "country": "RU", "safe": False, "lowercase": True}
    got = (await served.post("/generate", json=body)).json()
    assert got["rejected"]["mixed_script"] > 0 and got["count"] > 0
    for name in got["names"]:
        scripts = {unicodedata.name(c).split()[0] for c in name if c.isalpha()}
        assert len(scripts) <= 1, name


async def test_a_name_that_begins_or_ends_with_a_separator_is_rejected(served: httpx.AsyncClient) -> None:
    """Every name of the corpora begins with a letter and ends with a letter or an apostrophe: a
    sampled " anna" or "anna-" is rejected and replaced (the tiny model slips often)."""
    body = {"model": "world", "n": 200, "seed": 3, "country": "ES", "safe": False, "lowercase": True}
    got = (await served.post("/generate", json=body)).json()
    assert got["rejected"]["misshapen"] > 0 and got["count"] > 0
    for name in got["names"]:
        assert name[0].isalpha() and (name[-1].isalpha() or name[-1] == "'"), name


async def test_names_keep_their_script_and_case(served: httpx.AsyncClient) -> None:
    body = {"model": "world", "n": 5, "seed": 2, "country": "RU", "prefix": "АЛЕ"}
    cyrillic = (await served.post("/generate", json=body)).json()
    assert cyrillic["count"] == 5
    for name in cyrillic["names"]:  # capitalised as Cyrillic is, the prefix taken in any case
        assert name.startswith("Але") and name[1:] == name[1:].lower()
    lower = (await served.post("/generate", json={**body, "lowercase": True})).json()
    assert lower["names"] == [name.lower() for name in cyrillic["names"]]
    hebrew = (await served.post("/generate", json={**body, "country": "IL", "prefix": "מ"})).json()
    assert hebrew["count"] == 5 and all(name.startswith("מ") for name in hebrew["names"])
    dist = (await served.post("/next-char", json={"model": "world", "country": "il", "prefix": "מ"})).json()
    assert dist["condition"] == {"country": "IL"}
    assert math.isclose(sum(d["prob"] for d in dist["distribution"]), 1.0)
    assert {d["char"] for d in dist["distribution"]} >= {"ר", "ש", "<end>"}
    scored = (
        await served.post("/score", json={"model": "world", "country": "Ru", "names": ["Сергей"]})
    ).json()
    assert scored["condition"] == {"country": "RU"} and scored["scores"][0]["logprob"] < 0


@pytest.mark.parametrize(
    "path, params, message",
    [
        ("/generate", {"model": "world", "country": "ZZ"}, "country must be one of AT, AU, BE"),
        ("/next-char", {"model": "world", "country": "france"}, "got 'france'"),
        ("/score", {"model": "world", "country": "xx", "names": ["anna"]}, "RU, SE, US, UY"),
        ("/generate", {"model": "names", "country": "FR"}, "model 'names' takes no country condition"),
        ("/next-char", {"model": "world", "country": ""}, "at least 1 character"),
    ],
)
async def test_a_country_the_model_does_not_take_is_a_422_listing_those_it_does(
    served: httpx.AsyncClient, path: str, params: dict[str, object], message: str
) -> None:
    response = await served.post(path, json=params)
    assert response.status_code == 422, response.text
    assert message in response.text and "country" in response.text
