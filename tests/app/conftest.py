"""App fixtures: the real app, with its lifespan, behind an httpx client on the ASGI transport."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from checkpoint_format import sha256_hex, write_manifest
from tests.support import MODELS as REPO_MODELS
from training.config import TrainConfig
from training.train import run


@pytest.fixture(scope="module")  # module-wide, so that a module may start one app for all its tests
def anyio_backend() -> str:
    return "asyncio"


def app_client(**settings: object):  # type: ignore[no-untyped-def]
    """An async context manager: the app with these settings, started, and a client for it."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def run() -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(Settings(**{"models_dir": REPO_MODELS, **settings}))  # type: ignore[arg-type]
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://namegen") as client:
                yield client

    return run()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with app_client() as c:
        yield c


def tiny_models(work: Path, corpus: Path, name: str, **config: Any) -> Path:
    """A models folder, work/models: a tiny model `name` trained on `corpus` (60 steps of a 8 / 16 x 4
    network; `config`: more TrainConfig fields, e.g. conditions) beside a copy of the shipped
    `names`, with the manifest the service checks both against."""
    out = work / "models"
    cfg = TrainConfig(
        corpus=str(corpus), name=name, out=str(out), n_embd=8, hidden=(16, 16, 16, 16), steps=60,
        batch_size=64, eval_interval=30, progress=False, threads=1, **config,
    )  # fmt: skip
    run(cfg)
    shutil.copy(REPO_MODELS / "names.pt", out / "names.pt")
    write_manifest(out, {"names.pt": sha256_hex((out / "names.pt").read_bytes())})  # beside name's line
    return out


@pytest.fixture(scope="module")
async def served(models: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app serving the test module's `models` folder (a fixture the module defines)."""
    async with app_client(models_dir=models) as c:
        yield c
