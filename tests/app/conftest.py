"""App fixtures: the real app, with its lifespan, behind an httpx client on the ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.support import MODELS as REPO_MODELS


@pytest.fixture
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
