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


@pytest.fixture
def collected(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of tasks in each polled batch the batchers hand out."""
    sizes: list[int] = []
    real = batching.ModelBatcher._collect

    def spy(self: batching.ModelBatcher) -> None:
        assert self._polled is not None
        sizes.append(len(self._polled[0]))
        real(self)

    monkeypatch.setattr(batching.ModelBatcher, "_collect", spy)
    return sizes


async def test_under_load_batches_are_polled_and_answer_as_alone(
    model: LoadedModel, planned: list[int], collected: list[int]
) -> None:
    batcher = batching.ModelBatcher(model, max_rows=8192, wait_s=0.0)
    results = await asyncio.gather(*(batcher.run(task(model, seed)) for seed in range(6)))
    # the first request found the model idle (a callback wakes the loop); the others queued
    # behind it and ran straight after it, polled
    assert planned == [1, 5] and collected == [5]
    for seed, done in enumerate(results):
        assert done.result().names == sample_names(model, SampleSpec(n=3, max_length=12), seed).names


async def test_a_polled_batch_is_handed_out_when_the_next_request_arrives(
    model: LoadedModel, planned: list[int], collected: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batching, "POLL_S", 3600.0)  # an hour: only a request can collect the batch
    batcher = batching.ModelBatcher(model, max_rows=8192, wait_s=0.0)
    first = [asyncio.ensure_future(batcher.run(task(model, seed))) for seed in range(4)]
    await asyncio.wait_for(first[0], 60)
    for _ in range(600):  # let the polled batch of seeds 1-3 end (about 2 ms of work)
        if batcher._polled is not None and batcher._polled[2].done():
            break
        await asyncio.sleep(0.01)
    assert not any(f.done() for f in first[1:])  # ended, but nothing has looked yet
    late = asyncio.ensure_future(batcher.run(task(model, 9)))
    done = await asyncio.wait_for(asyncio.gather(*first[1:]), 5)
    assert collected == [3]
    assert [d.result().names for d in done] == [
        sample_names(model, SampleSpec(n=3, max_length=12), seed).names for seed in range(1, 4)
    ]
    batcher.close()  # the late request's batch is polled too, and will not be: close fails it
    with pytest.raises(RuntimeError, match="shutting down"):
        await late
    assert planned == [1, 3, 1]
