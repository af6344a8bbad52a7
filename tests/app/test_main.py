"""The app's lifespan: what it does to the process around the models it loads."""

from __future__ import annotations

import gc

import pytest

from app.config import Settings, spin_rows
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


@pytest.mark.parametrize(
    ("values", "expected"),
    [({}, 64), ({"workers": 2}, 0), ({"workers": 2, "batch_spin_rows": 16}, 16), ({"batch_spin_rows": 0}, 0)],
)
def test_the_event_loop_spins_on_small_batches_only_with_one_worker(
    values: dict[str, int], expected: int
) -> None:
    # several workers' spinning event loops would take each other's cores: off by default there
    assert spin_rows(Settings(**values)) == expected  # type: ignore[arg-type]


async def test_the_batchers_get_the_resolved_spin_setting() -> None:
    async with app_client(workers=3) as client:
        assert (await client.get("/readyz")).status_code == 200
        runner = client._transport.app.state.service.runner  # type: ignore[attr-defined]
        assert {b.policy.spin_rows for b in runner.batchers.values()} == {0}
