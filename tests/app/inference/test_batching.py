"""Micro-batching in the event loop: concurrent requests share batches, a lone one never waits, a
batch never holds more than its row cap, a heavy request's rounds interleave with light requests,
a large request fills every core, cancelled and late work stops, and shutdown fails what waits."""

from __future__ import annotations

import asyncio

import pytest

import app.inference.batching as batching
import app.inference.policy as policy
from app.inference.batches import sample_names, score_names
from app.inference.engine import Sampling
from app.inference.loaded import LoadedModel
from app.inference.registry import load_registry
from app.inference.sampling import Piece, SampleSpec, SampleTask, ScoreTask
from tests.support import MODELS

pytestmark = pytest.mark.anyio

HEAVY = SampleSpec(
    n=400, prefix="emma", novel=True, max_rounds=6, sampling=Sampling(max_length=5)
)  # rejects nearly all


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_registry(MODELS, None, False).models["names"]


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[int, int, int]]]:
    """Each batch the batchers start: (task id, offset, rows) of its pieces."""
    batches: list[list[tuple[int, int, int]]] = []
    real = batching.plan_batch

    def spy(pieces: list[Piece]):  # type: ignore[no-untyped-def]
        batches.append([(id(p.task), p.offset, p.rows) for p in pieces])
        return real(pieces)

    monkeypatch.setattr(batching, "plan_batch", spy)
    return batches


def task(model: LoadedModel, seed: int, n: int = 3) -> SampleTask:
    return SampleTask(model, SampleSpec(n=n, sampling=Sampling(max_length=12)), seed)


def alone(model: LoadedModel, seed: int, n: int = 3) -> list[str]:
    return sample_names(model, SampleSpec(n=n, sampling=Sampling(max_length=12)), seed).names


async def test_lone_request_on_a_quiet_model_starts_at_once(model: LoadedModel, planned: list) -> None:  # type: ignore[type-arg]
    batcher = batching.ModelBatcher(model, max_rows=8192, wait_s=3600.0)  # an hour, if it waited
    running = asyncio.ensure_future(batcher.run(task(model, 1)))
    await asyncio.sleep(0)
    assert len(planned) == 1 and batcher.timer is None and not batcher.running[0].polled
    done = await asyncio.wait_for(running, 60)
    assert done.result().names == alone(model, 1)


async def test_under_load_requests_arriving_within_the_wait_share_one_batch(
    model: LoadedModel,
    planned: list,  # type: ignore[type-arg]
) -> None:
    batcher = batching.ModelBatcher(model, max_rows=8192, wait_s=0.2)
    await batcher.run(task(model, 0))  # a batch just ended: the model counts as under load
    results = await asyncio.gather(*(batcher.run(task(model, seed)) for seed in range(1, 6)))
    assert [len(b) for b in planned] == [1, 5]
    for seed, done in zip(range(1, 6), results, strict=True):  # the same names as alone
        assert done.result().names == alone(model, seed)


async def test_under_load_requests_read_in_one_turn_of_the_event_loop_share_one_batch(
    model: LoadedModel,
    planned: list,  # type: ignore[type-arg]
) -> None:
    batcher = batching.ModelBatcher(model, max_rows=8192)  # no wait
    await batcher.run(task(model, 0))  # a batch just ended: the model counts as under load
    results = await asyncio.gather(*(batcher.run(task(model, seed)) for seed in range(1, 6)))
    # the first does not start a batch of its own: the next batch starts once all five are queued
    assert [len(b) for b in planned] == [1, 5]
    assert [r.result().names for r in results] == [alone(model, seed) for seed in range(1, 6)]


async def test_small_requests_queue_behind_the_running_batch_and_are_polled(
    model: LoadedModel,
    planned: list,  # type: ignore[type-arg]
) -> None:
    batcher = batching.ModelBatcher(model, max_rows=8192, parallel=2)
    results = await asyncio.gather(*(batcher.run(task(model, seed)) for seed in range(6)))
    # the first found the model idle; the others, too small for a second core, joined the next batch
    assert [len(b) for b in planned] == [1, 5]
    assert [r.result().names for r in results] == [alone(model, seed) for seed in range(6)]


async def test_a_batch_never_holds_more_than_its_row_cap(model: LoadedModel, planned: list) -> None:  # type: ignore[type-arg]
    batcher = batching.ModelBatcher(model, max_rows=100)
    big = SampleTask(model, SampleSpec(n=250, unique=False), 4)
    small = [task(model, seed) for seed in range(5)]
    results = await asyncio.gather(batcher.run(big), *(batcher.run(t) for t in small))
    assert max(sum(rows for _, _, rows in b) for b in planned) <= 100
    assert len(planned) >= 3  # 250 rows cannot go in fewer
    assert results[0].result() == sample_names(model, SampleSpec(n=250, unique=False), 4)  # cut or not
    assert [r.result().names for r in results[1:]] == [alone(model, seed) for seed in range(5)]
    scores = ScoreTask(model, ["emma"] * 40 + ["zzyzx"] * 40)
    await batcher.run(scores)
    assert scores.scores()[::40] == score_names(model, ["emma", "zzyzx"])


async def test_a_heavy_requests_rounds_go_behind_light_requests(model: LoadedModel, planned: list) -> None:  # type: ignore[type-arg]
    """While a request that rejects nearly every sample runs round after round, light requests
    that arrive are served in the next batch, not after all its rounds."""
    batcher = batching.ModelBatcher(model, max_rows=512)
    heavy = SampleTask(model, HEAVY, 1)
    heavy_run = asyncio.ensure_future(batcher.run(heavy))
    await asyncio.sleep(0)
    light = [task(model, seed) for seed in range(3)]
    done = await asyncio.wait_for(asyncio.gather(*(batcher.run(t) for t in light)), 30)
    assert not heavy_run.done() and heavy.rounds <= 2  # the light ones did not wait for it
    assert [d.result().names for d in done] == [alone(model, seed) for seed in range(3)]
    result = (await heavy_run).result()
    assert result == sample_names(model, HEAVY, 1) and result.rounds == 6


async def test_a_new_request_goes_before_the_queued_pieces_of_a_large_one(
    model: LoadedModel,
    planned: list,  # type: ignore[type-arg]
) -> None:
    """A request arriving while a large one has many pieces queued is in the very next batch: the
    requests served least go first."""
    batcher = batching.ModelBatcher(model, max_rows=100)
    big = SampleTask(model, SampleSpec(n=1000, unique=False), 2)
    big_run = asyncio.ensure_future(batcher.run(big))
    await asyncio.sleep(0)
    assert len(planned) == 1 and len(batcher.queue) == 9  # one piece running, nine queued
    light = task(model, 5)
    done = await batcher.run(light)
    assert id(light) in [t for t, _, _ in planned[1]]  # the next batch after the running one
    assert done.result().names == alone(model, 5)
    assert (await big_run).result() == sample_names(model, SampleSpec(n=1000, unique=False), 2)
    assert sorted(offset for b in planned for t, offset, _ in b if t == id(big)) == list(range(0, 1000, 100))


async def test_a_large_request_fills_every_core(model: LoadedModel, planned: list) -> None:  # type: ignore[type-arg]
    batcher = batching.ModelBatcher(model, max_rows=1000, parallel=2)
    running = asyncio.ensure_future(batcher.run(SampleTask(model, SampleSpec(n=1000, unique=False), 3)))
    await asyncio.sleep(0)
    assert len(batcher.running) == 2 and [b.plan.rows for b in batcher.running] == [500, 500]
    assert (await running).result() == sample_names(model, SampleSpec(n=1000, unique=False), 3)


async def test_a_failing_batch_fails_its_requests_and_the_next_batch_runs(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batching.plan_batch

    def fail_seed_13(pieces: list[Piece]):  # type: ignore[no-untyped-def]
        if any(isinstance(p.task, SampleTask) and p.task.seed == 13 for p in pieces):
            raise RuntimeError("boom")
        return real(pieces)

    monkeypatch.setattr(batching, "plan_batch", fail_seed_13)
    batcher = batching.ModelBatcher(model, max_rows=8192)
    with pytest.raises(RuntimeError, match="boom"):
        await batcher.run(task(model, 13))
    assert (await batcher.run(task(model, 14))).result().complete


async def test_a_batch_that_fails_as_it_ends_gives_its_deadline_slots_back(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batching.finish_batch

    def fail_seed_13(m: LoadedModel, plan, outputs):  # type: ignore[no-untyped-def]
        if any(isinstance(p.task, SampleTask) and p.task.seed == 13 for p in plan.pieces):
            raise RuntimeError("boom")
        return real(m, plan, outputs)

    monkeypatch.setattr(batching, "finish_batch", fail_seed_13)
    batcher = batching.ModelBatcher(model, max_rows=8192)
    with pytest.raises(RuntimeError, match="boom"):
        await batcher.run(task(model, 13), timeout_s=60)
    assert len(batcher.free_slots) == batching.DEADLINE_SLOTS - 1
    assert (await batcher.run(task(model, 14), timeout_s=60)).result().complete


async def test_deadline_ends_a_request_with_what_it_found(model: LoadedModel) -> None:
    batcher = batching.ModelBatcher(model, max_rows=256)
    result = (await batcher.run(SampleTask(model, HEAVY, 1), timeout_s=0.0)).result()
    assert result.stopped == "deadline" and result.rounds == 1 and result.sampled == 0
    slow = (await batcher.run(SampleTask(model, HEAVY, 1), timeout_s=0.05)).result()
    assert slow.stopped == "deadline" and 1 <= slow.rounds < 6


async def test_a_running_round_stops_at_the_deadline(model: LoadedModel) -> None:
    """The deadline stops rows already in a running batch, not only the pieces still queued: one
    round of 1,000 rows of 64 characters is one batch, cut short where it is; its cut rows count as
    never sampled, the rows that finished are kept, and the slot is free again afterwards."""
    batcher = batching.ModelBatcher(model, max_rows=1024)
    long = SampleSpec(n=1000, unique=False, max_steps=10**7, sampling=Sampling(min_length=64, max_length=64))
    result = (await batcher.run(SampleTask(model, long, 3), timeout_s=0.02)).result()
    assert result.stopped == "deadline" and result.rounds == 1 and result.sampled < 1000
    assert len(batcher.free_slots) == batching.DEADLINE_SLOTS - 1 and not bool(batcher.expired.any())
    # the same request with time enough runs its round whole, unaffected by the slot used before
    whole = (await batcher.run(SampleTask(model, long, 3), timeout_s=60)).result()
    assert whole.sampled >= 1000 and whole.names == sample_names(model, long, 3).names


class Gone:
    """A client that goes away when told to."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self) -> None:
        await self.event.wait()


async def test_cancelled_requests_stop_at_every_stage(model: LoadedModel, planned: list) -> None:  # type: ignore[type-arg]
    counts: list[tuple[str, int]] = []
    batcher = batching.ModelBatcher(model, max_rows=256, on_cancel=lambda s, r: counts.append((s, r)))
    # queued: behind a running batch, gone before its turn: it never runs
    blocker = asyncio.ensure_future(batcher.run(SampleTask(model, SampleSpec(n=256, unique=False), 0)))
    queued_gone = Gone()
    queued = SampleTask(model, SampleSpec(n=200, unique=False), 1)
    queued_run = asyncio.ensure_future(batcher.run(queued, gone=queued_gone.wait()))
    await asyncio.sleep(0)
    queued_gone.event.set()
    with pytest.raises(batching.ClientGone):
        await queued_run
    await blocker
    assert queued.rounds == 0 and all(id(queued) not in {t for t, _, _ in b} for b in planned)
    assert counts == [("queued", 200)]
    # between rounds or running: a heavy request stops after the round under way
    heavy_gone = Gone()
    heavy = SampleTask(model, HEAVY, 2)
    heavy_run = asyncio.ensure_future(batcher.run(heavy, gone=heavy_gone.wait()))
    while heavy.rounds < 2:
        await asyncio.sleep(0.001)
    heavy_gone.event.set()
    with pytest.raises(batching.ClientGone):
        await heavy_run
    rounds = heavy.rounds
    assert (await batcher.run(task(model, 5))).result().names == alone(model, 5)  # later ones unaffected
    await asyncio.sleep(0.2)
    assert heavy.rounds <= rounds + 1 and counts[1][0] in ("running", "between_rounds")
    assert not batcher.queue and not batcher.running


async def test_close_fails_queued_and_running_requests(model: LoadedModel) -> None:
    batcher = batching.ModelBatcher(model, max_rows=8192, wait_s=3600.0)
    running = asyncio.ensure_future(batcher.run(SampleTask(model, SampleSpec(n=2000, unique=False), 0)))
    await asyncio.sleep(0)
    assert batcher.running and not batcher.running[0].polled  # a callback batch
    queued = asyncio.ensure_future(batcher.run(task(model, 1)))
    await asyncio.sleep(0)
    batcher.close()
    for fut in (running, queued):
        with pytest.raises(batching.ServiceClosing, match="shutting down"):
            await fut
    with pytest.raises(batching.ServiceClosing):
        await batcher.run(task(model, 2))
    await asyncio.sleep(0.5)  # the batch ends on its pool thread; its callback schedules nothing


async def test_a_polled_batch_is_handed_out_when_the_next_request_arrives(
    model: LoadedModel,
    planned: list,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(policy, "POLL_S", 3600.0)  # an hour: only a request can collect the batch
    batcher = batching.ModelBatcher(model, max_rows=8192, spin_rows=0)  # nor does the event loop spin
    first = [asyncio.ensure_future(batcher.run(task(model, seed))) for seed in range(4)]
    await asyncio.wait_for(first[0], 60)
    for _ in range(600):  # let the polled batch of seeds 1-3 end (about 2 ms of work)
        if batcher.running and batcher.running[0].handle.done():
            break
        await asyncio.sleep(0.01)
    assert batcher.running[0].polled and not any(f.done() for f in first[1:])  # nobody looked yet
    late = asyncio.ensure_future(batcher.run(task(model, 9)))
    done = await asyncio.wait_for(asyncio.gather(*first[1:]), 5)
    assert [d.result().names for d in done] == [alone(model, seed) for seed in range(1, 4)]
    batcher.close()  # the late request's batch is polled too, and will not be: close fails it
    with pytest.raises(batching.ServiceClosing):
        await late
    assert [len(b) for b in planned] == [1, 3, 1]


async def test_a_small_polled_batch_is_handed_out_as_it_ends_with_no_request_arriving(
    model: LoadedModel,
    planned: list,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under load every client may be waiting on the running batch, so none arrives to collect it:
    a small one is checked on every turn of the event loop, never left for the poll timer."""
    monkeypatch.setattr(policy, "POLL_S", 3600.0)  # an hour: the timer never collects it
    batcher = batching.ModelBatcher(model, max_rows=8192, spin_rows=9)
    first = [asyncio.ensure_future(batcher.run(task(model, seed))) for seed in range(4)]
    await asyncio.wait_for(first[0], 60)
    assert batcher.running and batcher.running[0].polled  # seeds 1-3, polled
    done = await asyncio.wait_for(asyncio.gather(*first[1:]), 60)  # and no further request
    assert [d.result().names for d in done] == [alone(model, seed) for seed in range(1, 4)]
    assert [len(b) for b in planned] == [1, 3] and not batcher.running
    # a polled batch larger than spin_rows is left to the timer (or the next request): `late`,
    # queued behind `big`, which starts on a quiet model (a callback batch)
    await asyncio.sleep(2 * policy.BUSY_WINDOW_S)
    big = asyncio.ensure_future(batcher.run(task(model, 10, n=batcher.policy.spin_rows + 1)))
    await asyncio.sleep(0)
    late = asyncio.ensure_future(batcher.run(task(model, 11, n=batcher.policy.spin_rows + 1)))
    await asyncio.wait_for(big, 60)
    for _ in range(600):  # let the polled batch end (a few ms of work)
        if batcher.running and batcher.running[0].handle.done():
            break
        await asyncio.sleep(0.01)
    assert batcher.running[0].polled and not late.done()  # ended, and nobody looked
    batcher.close()
    with pytest.raises(batching.ServiceClosing):
        await late


async def test_under_load_an_uneven_split_of_small_requests_evens_out(
    model: LoadedModel,
    planned: list,  # type: ignore[type-arg]
) -> None:
    """Under load, the batch after a small one takes at most the mean of its rows and the queued
    rows: 28 requests queued behind a batch of 4 go as 16 and 12, not 28, so that the event loop
    has requests to answer while either group computes."""
    batcher = batching.ModelBatcher(model, max_rows=8192)
    await batcher.run(task(model, 0, n=1))  # a batch just ended: the model counts as under load
    slow = SampleSpec(
        n=1, sampling=Sampling(min_length=600, max_length=2000)
    )  # 600 steps at least, then the name ends (room to end, so no row is drawn again): it runs
    # while 28 queue
    first = [asyncio.ensure_future(batcher.run(SampleTask(model, slow, seed))) for seed in range(1, 5)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert [len(b) for b in planned] == [1, 4] and batcher.running[0].polled
    rest = [asyncio.ensure_future(batcher.run(task(model, seed, n=1))) for seed in range(10, 38)]
    await asyncio.sleep(0)
    assert batcher.queued_rows == 28 and not batcher.running[0].handle.done()  # queued while it runs
    done = await asyncio.wait_for(asyncio.gather(*first, *rest), 60)
    assert [len(b) for b in planned] == [1, 4, 16, 12]
    assert [d.result().names for d in done[4:]] == [alone(model, seed, n=1) for seed in range(10, 38)]
    assert [d.result().names for d in done[:4]] == [
        sample_names(model, slow, seed).names for seed in range(1, 5)
    ]


async def test_under_load_a_large_batch_is_handed_out_by_its_callback(
    model: LoadedModel,
    planned: list,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch of PARALLEL_ROWS rows or more wakes the event loop as it ends, under load too: a
    lone client sending large requests back to back gets each answer at once, not at the timer."""
    monkeypatch.setattr(policy, "POLL_S", 3600.0)  # an hour: the timer never collects it
    batcher = batching.ModelBatcher(model, max_rows=8192, spin_rows=0)  # nor does the event loop spin
    n = policy.PARALLEL_ROWS
    await batcher.run(task(model, 0, n=n))  # a batch just ended: the model counts as under load
    done = await asyncio.wait_for(batcher.run(task(model, 1, n=n)), 30)  # and no further request
    assert not batcher.running and [len(b) for b in planned] == [1, 1]
    assert done.result().names == alone(model, 1, n=n)
