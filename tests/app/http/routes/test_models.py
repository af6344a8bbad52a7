"""GET /models and /models/{name}: what is loaded, with metadata and measured quality."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.app.conftest import REPO_MODELS

pytestmark = pytest.mark.anyio

SHIPPED = ["names", "names-era", "names-female", "names-male", "surnames"]


async def test_list_models(client: httpx.AsyncClient) -> None:
    resp = await client.get("/models")
    assert resp.status_code == 200
    data = resp.json()
    assert data["count"] == len(SHIPPED) and data["default"] == "names"
    assert [m["name"] for m in data["data"]] == SHIPPED
    for m in data["data"]:
        for key in [
            "description",
            "vocab",
            "context_length",
            "parameters",
            "metrics",
            "corpus",
            "created_at",
            "sha256",
        ]:
            assert m[key], (m["name"], key)
        assert m["vocab"][0] == "." and m["alphabet"] == "abcdefghijklmnopqrstuvwxyz"
        assert m["context_length"] == 16 and m["incremental"] is True
        assert 0 < m["metrics"]["train_loss"] < 3 and 0 < m["metrics"]["test_loss"] < 3
        for key in ["name", "source", "licence", "items"]:
            assert m["corpus"][key]
        file_hash = hashlib.sha256((REPO_MODELS / f"{m['name']}.pt").read_bytes()).hexdigest()
        assert m["sha256"] == file_hash
        assert m["default"] is (m["name"] == "names")
    items = {m["name"]: m["corpus"]["items"] for m in data["data"]}
    assert items == {
        "names": 29225, "names-female": 17661, "names-male": 14243, "surnames": 88799, "names-era": 410809
    }  # fmt: skip


async def test_get_one_model(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/models")).json()["data"]
    one = await client.get("/models/surnames")
    assert one.status_code == 200 and one.json() == next(m for m in listed if m["name"] == "surnames")


@pytest.mark.parametrize("name", ["nope", "names.pt", "NAMES", "%2e%2e", "names%00"])
async def test_unknown_model_404_lists_models(client: httpx.AsyncClient, name: str) -> None:
    resp = await client.get(f"/models/{name}")
    assert resp.status_code == 404
    assert "names, names-era, names-female, names-male, surnames" in resp.json()["detail"]


@pytest.mark.parametrize("path", ["/models/../models", "/models/%2e%2e%2fapp%2fmain.py", "/models/a/b"])
async def test_paths_never_reach_the_filesystem(client: httpx.AsyncClient, path: str) -> None:
    resp = await client.get(path)
    assert resp.status_code in (200, 404)  # ".." collapses to /models; the rest match no model
    if resp.status_code == 200:
        assert resp.json()["count"] == len(SHIPPED)


async def test_default_model_setting() -> None:
    from tests.app.conftest import app_client

    async with app_client(default_model="surnames") as client:
        assert (await client.get("/models")).json()["default"] == "surnames"
        assert (await client.get("/generate", params={"n": 1})).json()["model"] == "surnames"
