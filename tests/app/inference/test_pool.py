"""Results sampled ahead: each is what its seed gives, none is served twice, refills grow with
demand, the kinds kept are bounded, and a pool of size 0 or a closed one samples nothing."""

from __future__ import annotations

import asyncio

import pytest

import app.inference.batching as batching
from app.inference.batches import BatchPlan, sample_names
from app.inference.batching import BatchRunner, ServiceClosing
from app.inference.engine import Sampling
from app.inference.pool import FIRST_REFILL, MAX_POOLED_N, SamplePool
from app.inference.registry import Registry, load_registry
from app.inference.sampling import Piece, SampleResult, SampleSpec, SampleTask
from tests.support import MODELS

pytestmark = pytest.mark.anyio

SPEC = SampleSpec(n=1)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(MODELS, None, False)


@pytest.fixture
def runner(registry: Registry) -> BatchRunner:
    return BatchRunner(registry)


async def settled(pool: SamplePool) -> None:
    """Wait for every refill under way."""
    while refills := [q.refill for q in pool.queues.values() if q.refill is not None]:
        await asyncio.wait_for(asyncio.gather(*refills), 60)


async def test_each_result_is_what_its_seed_gives_and_none_is_served_twice(
    registry: Registry, runner: BatchRunner
) -> None:
    model = registry.models["names"]
    spec = SampleSpec(n=3, sampling=Sampling(max_length=9))
    pool = SamplePool(runner, size=64, kinds=4)
    assert pool.take(model, spec, registry.safety) is None  # the first of a kind is sampled as it comes
    taken: list[tuple[int, SampleResult]] = []
    while len(taken) < 40:
        await settled(pool)
        got = pool.take(model, spec, registry.safety)
        assert got is not None
        taken.append(got)
    seeds = [seed for seed, _ in taken]
    assert len(set(seeds)) == len(seeds)
    for seed, result in taken:
        alone = sample_names(model, spec, seed, registry.safety)
        assert (result.names, result.rounds, result.sampled, result.rejected) == (
            alone.names,
            alone.rounds,
            alone.sampled,
            alone.rejected,
        )
    # the safe filter is part of the kind: the same spec without it is a kind of its own
    assert pool.take(model, spec, None) is None


async def test_refills_double_with_demand_up_to_the_size(registry: Registry, runner: BatchRunner) -> None:
    model = registry.models["names"]
    pool = SamplePool(runner, size=40, kinds=4)
    asked = []
    for _ in range(60):
        pool.take(model, SPEC, None)
        queue = pool.queues["names", SPEC, False]
        if not asked or queue.asked != asked[-1]:
            asked.append(queue.asked)
        await settled(pool)
    assert asked == [FIRST_REFILL, 2 * FIRST_REFILL, 4 * FIRST_REFILL, 40]
    assert len(pool.queues["names", SPEC, False].results) <= 40


async def test_the_size_counts_names(registry: Registry, runner: BatchRunner) -> None:
    model = registry.models["names"]
    spec = SampleSpec(n=16, unique=False)
    pool = SamplePool(runner, size=64, kinds=4)  # four results of sixteen names
    for _ in range(12):
        pool.take(model, spec, None)
        await settled(pool)
    queue = pool.queues["names", spec, False]
    assert queue.asked == 4 and 0 < len(queue.results) <= 4


async def test_a_refill_runs_as_one_batch(
    registry: Registry, runner: BatchRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    real = batching.plan_batch

    def spy(pieces: list[Piece]) -> BatchPlan:
        batches.append(sum(p.rows for p in pieces))
        return real(pieces)

    monkeypatch.setattr(batching, "plan_batch", spy)
    pool = SamplePool(runner, size=64, kinds=4)
    pool.take(registry.models["names"], SampleSpec(n=1, unique=False, sampling=Sampling(max_length=20)), None)
    await settled(pool)
    assert batches[0] == FIRST_REFILL  # later rounds, if any sample was rejected, come after


async def test_the_least_recently_used_kind_goes_first(registry: Registry, runner: BatchRunner) -> None:
    pool = SamplePool(runner, size=16, kinds=2)
    names, female, male = (registry.models[m] for m in ("names", "names-female", "names-male"))
    for model in (names, female):
        pool.take(model, SPEC, None)
    await settled(pool)
    pool.take(names, SPEC, None)  # names is now the most recent
    pool.take(male, SPEC, None)  # a third kind: names-female's queue goes
    assert [kind[0] for kind in pool.queues] == ["names", "names-male"]
    await settled(pool)


async def test_no_pool_for_size_zero_large_requests_or_after_close(
    registry: Registry, runner: BatchRunner
) -> None:
    model = registry.models["names"]
    off = SamplePool(runner, size=0, kinds=4)
    assert off.take(model, SPEC, None) is None and not off.queues
    pool = SamplePool(runner, size=16, kinds=4)
    assert pool.take(model, SampleSpec(n=MAX_POOLED_N + 1), None) is None and not pool.queues
    pool.take(model, SPEC, None)
    pool.close()
    assert pool.take(model, SPEC, None) is None and not pool.queues


async def test_a_refill_on_a_closed_runner_ends_without_results(
    registry: Registry, runner: BatchRunner
) -> None:
    pool = SamplePool(runner, size=16, kinds=4)
    model = registry.models["names"]
    runner.close()
    assert pool.take(model, SPEC, None) is None
    queue = pool.queues["names", SPEC, False]
    await settled(pool)
    assert not queue.results and queue.refill is None
    with pytest.raises(ServiceClosing):
        await runner.run_all(model, [SampleTask(model, SPEC, 1)])
