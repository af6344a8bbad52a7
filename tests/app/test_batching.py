"""Micro-batching in the event loop: concurrent requests share batches, a lone one never waits, and
a failing batch fails only its own requests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import app.batching as batching
from app.registry import LoadedModel, load_registry
from app.sampling import SampleSpec, SampleTask, Task, sample_names

pytestmark = pytest.mark.anyio

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_registry(MODELS, None, False).models["names"]


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of tasks in each batch the batchers start."""
    sizes: list[int] = []
    real = batching.plan_batch

    def spy(model: LoadedModel, tasks: list[Task]):  # type: ignore[no-untyped-def]
        sizes.append(len(tasks))
        return real(model, tasks)

    monkeypatch.setattr(batching, "plan_batch", spy)
    return sizes


def task(model: LoadedModel, seed: int, n: int = 3) -> SampleTask:
    return SampleTask(model, SampleSpec(n=n, max_length=12), seed)


async def test_lone_request_on_a_quiet_model_starts_at_once(model: LoadedModel, planned: list[int]) -> None:
    batcher = batching.ModelBatcher(model, max_rows=8192, wait_s=3600.0)  # an hour, if it waited
    running = asyncio.ensure_future(batcher.run(task(model, 1)))
    await asyncio.sleep(0)
    assert planned == [1] and batcher._timer is None
    done = await asyncio.wait_for(running, 60)
    assert done.result().names == sample_names(model, SampleSpec(n=3, max_length=12), 1).names


async def test_under_load_requests_arriving_within_the_wait_share_one_batch(
    model: LoadedModel, planned: list[int]
) -> None:
    batcher = batching.ModelBatcher(model, max_rows=8192, wait_s=0.2)
    await batcher.run(task(model, 0))  # a batch just ended: the model counts as under load
    results = await asyncio.gather(*(batcher.run(task(model, seed)) for seed in range(1, 6)))
    assert planned == [1, 5]
    for seed, done in zip(range(1, 6), results, strict=True):  # the same names as alone
        assert done.result().names == sample_names(model, SampleSpec(n=3, max_length=12), seed).names


async def test_without_a_wait_requests_queue_behind_the_running_batch(
    model: LoadedModel, planned: list[int]
) -> None:
    batcher = batching.ModelBatcher(model, max_rows=8192, wait_s=0.0)
    await asyncio.gather(*(batcher.run(task(model, seed)) for seed in range(6)))
    assert planned[0] == 1 and sum(planned) == 6 and len(planned) < 6  # later ones batched together


async def test_a_failing_batch_fails_its_requests_and_the_next_batch_runs(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batching.plan_batch

    def fail_seed_13(m: LoadedModel, tasks: list[Task]):  # type: ignore[no-untyped-def]
        if any(isinstance(t, SampleTask) and t.seed == 13 for t in tasks):
            raise RuntimeError("boom")
        return real(m, tasks)

    monkeypatch.setattr(batching, "plan_batch", fail_seed_13)
    batcher = batching.ModelBatcher(model, max_rows=8192, wait_s=0.0)
    with pytest.raises(RuntimeError, match="boom"):
        await batcher.run(task(model, 13))
    assert (await batcher.run(task(model, 14))).result().complete


async def test_close_fails_queued_requests(model: LoadedModel) -> None:
    batcher = batching.ModelBatcher(model, max_rows=8192, wait_s=3600.0)
    await batcher.run(task(model, 0))
    waiting = asyncio.ensure_future(batcher.run(task(model, 1)))  # waits for companions
    await asyncio.sleep(0)
    batcher.close()
    with pytest.raises(RuntimeError, match="shutting down"):
        await waiting
