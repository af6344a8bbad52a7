"""The app's lifespan: what it does to the process around the models it loads."""

from __future__ import annotations

import gc

import pytest

from app.main import GC_YOUNG_THRESHOLD
from tests.app.conftest import app_client

pytestmark = pytest.mark.anyio


async def test_lifespan_tunes_the_garbage_collector_and_puts_it_back() -> None:
    # a host that runs the app's lifespan in its own process (the tests, a Ray Serve replica)
    # gets its collector back as it was
    before = gc.get_threshold()
    async with app_client() as client:
        assert (await client.get("/readyz")).status_code == 200
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0  # what start-up loaded is out of the collector's reach
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
