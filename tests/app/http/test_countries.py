"""A model conditioned on country and sex over HTTP: /models lists its countries, /generate,
/next-char and /score take `country` in any case, names come in the country's own letters
(Cyrillic capitalised, Hebrew as it is written), and a country the model does not take is a 422
that lists the ones it does. The model is a tiny one trained on every 40th line of names-world."""

from __future__ import annotations

import math
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from checkpoint_format import sha256_hex, write_manifest
from tests.app.conftest import REPO_MODELS, app_client
from tests.conftest import world_sample
from training.config import TrainConfig
from training.countries import CODES
from training.train import run

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("world")
    out = work / "models"
    cfg = TrainConfig(
        corpus=str(world_sample(work, 40)), name="world", out=str(out), conditions="sex,country",
        n_embd=8, hidden=(16, 16, 16, 16), steps=60, batch_size=64, eval_interval=30, progress=False,
        threads=1,
    )  # fmt: skip
    run(cfg)
    shutil.copy(REPO_MODELS / "names.pt", out / "names.pt")
    write_manifest(out, {"names.pt": sha256_hex((out / "names.pt").read_bytes())})
    return out


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def client(models: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(models_dir=models) as c:
        yield c


async def test_models_list_the_countries(client: httpx.AsyncClient) -> None:
    conditions = (await client.get("/models/world")).json()["conditions"]
    assert conditions["fields"]["country"]["values"] == list(CODES)
    assert conditions["fields"]["sex"]["values"] == ["F", "M"]


async def test_generate_takes_a_country_in_any_case_and_reproduces(client: httpx.AsyncClient) -> None:
    body = {"model": "world", "n": 8, "seed": 4, "sex": "F", "country": "fr"}
    a = (await client.post("/generate", json=body)).json()
    b = (await client.get("/generate", params={**body, "country": "FR"})).json()
    assert a == b and a["count"] == 8 and a["condition"] == {"sex": "F", "country": "FR"}
    russian = (await client.post("/generate", json={**body, "country": "RU"})).json()
    assert russian["names"] != a["names"] and russian["condition"]["country"] == "RU"


async def test_names_keep_their_script_and_case(client: httpx.AsyncClient) -> None:
    body = {"model": "world", "n": 5, "seed": 2, "country": "RU", "prefix": "АЛЕ"}
    cyrillic = (await client.post("/generate", json=body)).json()
    assert cyrillic["count"] == 5
    for name in cyrillic["names"]:  # capitalised as Cyrillic is, the prefix taken in any case
        assert name.startswith("Але") and name[1:] == name[1:].lower()
    lower = (await client.post("/generate", json={**body, "lowercase": True})).json()
    assert lower["names"] == [name.lower() for name in cyrillic["names"]]
    hebrew = (await client.post("/generate", json={**body, "country": "IL", "prefix": "מ"})).json()
    assert hebrew["count"] == 5 and all(name.startswith("מ") for name in hebrew["names"])
    dist = (await client.post("/next-char", json={"model": "world", "country": "il", "prefix": "מ"})).json()
    assert dist["condition"] == {"country": "IL"}
    assert math.isclose(sum(d["prob"] for d in dist["distribution"]), 1.0)
    assert {d["char"] for d in dist["distribution"]} >= {"ר", "ש", "<end>"}
    scored = (
        await client.post("/score", json={"model": "world", "country": "Ru", "names": ["Сергей"]})
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
    client: httpx.AsyncClient, path: str, params: dict[str, object], message: str
) -> None:
    response = await client.post(path, json=params)
    assert response.status_code == 422, response.text
    assert message in response.text and "country" in response.text
