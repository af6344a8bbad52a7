"""
Micro-batching, the driver: concurrent requests for the same model run as one batch, within bounds.

Each model has a ModelBatcher that lives in the event loop. A request's task is cut into pieces
(app/inference/sampling.py: a piece keeps its rows' numbers, so the names do not depend on the cut)
and queued; batches take queued pieces and run on torch's inter-op threads through the scripted
loop's `launch`, holding no GIL, while the event loop goes on serving HTTP. What a batch takes, when
it starts and how its end is noticed are the policy's (app/inference/policy.py); this module keeps
the queue, the running batches, their timers and the requests' futures, and applies the bounds:
- a sampling task past its deadline has its unstarted pieces dropped, its rows in running batches
  stopped where they are (its deadline slot in the scripted loop, engine.BatchLoop.expired), and
  ends with what it found; any other task past its deadline fails with DeadlineExceeded;
- a request whose client has gone (`gone`) is cancelled: its unstarted pieces never run and no
  further round starts; `on_cancel` counts each case;
- on shutdown every request still waiting fails with ServiceClosing.

No FastAPI here. One module, longer than most: it is one class's state (the queue, the running
batches, their timers, the deadline slots and the requests' futures), whose every method changes
it; what it decides is the policy's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from app.config import MAX_BATCH_ROWS, SPIN_ROWS
from app.inference.batches import BatchPlan, finish_batch, plan_batch
from app.inference.engine import DEADLINE_SLOTS, Sampling
from app.inference.loaded import LoadedModel
from app.inference.policy import BatchPolicy, Queued, Start, Watch
from app.inference.registry import Registry
from app.inference.sampling import NextCharTask, Piece, SampleSpec, SampleTask, ScoreTask, Task, cut

logger = logging.getLogger("namegen.batching")

CancelHook = Callable[[str, int], None]  # (stage, rows never run) for each cancelled request
WARM_UP_RUNS = 2  # small batches every model runs at start-up (warm_up)


class ServiceClosing(RuntimeError):
    """The service shut down before the request's batch could be handed out."""


class DeadlineExceeded(RuntimeError):
    """A task that cannot answer in part (scores) was still waiting for its batch at its deadline."""


class ClientGone(Exception):
    """The request's client went away; its work was cancelled."""


@dataclass(eq=False)
class Job:
    """One request's task in the batcher."""

    task: Task
    fut: asyncio.Future[Task]
    # event-loop time; past it a sampling task starts no further piece or round and answers with
    # what it has, and any other task's unstarted pieces are dropped and it fails (DeadlineExceeded)
    deadline: float
    pending: int = 0  # pieces of the current round not yet back
    running: int = 0  # of those, how many are in a running batch
    started: bool = False  # whether any piece of it has run or is running
    cancelled: bool = False
    served: int = 0  # rows of it taken into batches so far, every round counted
    slot_timer: asyncio.TimerHandle | None = None  # sets its deadline slot when the deadline passes
    slot_set: bool = False  # whether its slot's flag is set (to clear when the slot is released)

    def expired(self, now: float) -> bool:
        """A task past its deadline: its queued pieces are dropped."""
        return now > self.deadline


@dataclass(eq=False)
class Batch:
    pieces: list[tuple[Job, Piece]]
    plan: BatchPlan
    handle: torch.futures.Future[Any]
    polled: bool

    @property
    def rows(self) -> int:
        """The requests' rows (the plan's rows include the padding)."""
        return sum(p.rows for _, p in self.pieces)


class ModelBatcher:
    """The batches of one model, as the policy says. Use from one event loop."""

    def __init__(
        self,
        model: LoadedModel,
        *,
        max_rows: int = MAX_BATCH_ROWS,
        parallel: int = 1,
        wait_s: float = 0.0,
        spin_rows: int = SPIN_ROWS,
        on_cancel: CancelHook | None = None,
    ) -> None:
        self.model = model
        self.policy = BatchPolicy(max_rows=max_rows, parallel=parallel, spin_rows=spin_rows)
        self.wait_s = wait_s  # under load, how long a request that finds no batch running waits
        self.on_cancel = on_cancel
        self.queue: deque[tuple[Job, Piece]] = deque()
        self.running: list[Batch] = []
        self.timer: asyncio.Handle | None = None  # the scheduled start of the next batch
        self.poll_timer: asyncio.Handle | None = None  # the next check of the polled batches
        self.last_end = -math.inf  # event-loop time the last batch ended
        # rows of the last batch when it was small and polled (under load), else 0 (the even split)
        self.split_rows = 0
        self.closed = False
        # the scripted loop's deadline flags and the slots free to give out (0 is never given)
        self.expired: torch.Tensor = model.loop.expired
        self.free_slots = list(range(DEADLINE_SLOTS - 1, 0, -1))

    @property
    def queued_rows(self) -> int:
        return sum(p.rows for _, p in self.queue)

    async def run(
        self, task: Task, timeout_s: float = math.inf, gone: Awaitable[object] | None = None
    ) -> Task:
        """Run `task` to completion in as many batches as it needs and return it. A sampling
        task ends at `timeout_s` with what it has; when `gone` completes first (the client went
        away), the task is cancelled and ClientGone raised."""
        if self.closed:
            raise ServiceClosing("the service is shutting down")
        if task.rows == 0:  # nothing to run: a budget that affords no row
            task.end_round()
            return task
        loop = asyncio.get_running_loop()
        job = Job(task, loop.create_future(), loop.time() + timeout_s)
        if isinstance(task, SampleTask) and math.isfinite(timeout_s) and self.free_slots:
            self._take_slot(job, loop)
        try:
            return await self._run(job, loop, gone)
        finally:
            if job.running == 0:
                self._release_slot(job)

    async def run_all(self, tasks: Sequence[Task]) -> list[Task | BaseException]:
        """Run every task to completion, queued at once so that they share batches from the
        first, without a deadline or a client to watch (work the service gives itself: SamplePool);
        returns each task, or what it failed with (ServiceClosing on shutdown)."""
        if self.closed:
            raise ServiceClosing("the service is shutting down")
        loop = asyncio.get_running_loop()
        jobs = [Job(t, loop.create_future(), math.inf) for t in tasks]
        for job in jobs:
            if job.task.rows == 0:
                job.task.end_round()
                job.fut.set_result(job.task)
            else:
                self._enqueue(job)
        self._arrived(loop)
        try:
            return await asyncio.gather(*(j.fut for j in jobs), return_exceptions=True)
        except asyncio.CancelledError:  # no longer wanted: what has not started never will
            for job in jobs:
                job.cancelled = True
                self._drop(job)
            raise

    def _arrived(self, loop: asyncio.AbstractEventLoop) -> None:
        """Work has been queued: start a batch now, or once the event loop has read what has just
        arrived, as the policy says."""
        self._collect()  # a polled batch that has ended: hand it out, freeing its core
        start = self.policy.on_arrival(self.timer is not None, len(self.running), loop.time() - self.last_end)
        if start is Start.AFTER_READS:
            self._start_soon(loop, self.wait_s, back_to_back=True)
        elif start is Start.NOW:
            self._start(back_to_back=bool(self.running))

    async def _run(self, job: Job, loop: asyncio.AbstractEventLoop, gone: Awaitable[object] | None) -> Task:
        self._enqueue(job)
        self._arrived(loop)
        if gone is None:
            return await job.fut
        watcher = asyncio.ensure_future(gone)
        try:
            await asyncio.wait((job.fut, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if job.fut.done():
            return job.fut.result()
        self._cancel(job)
        raise ClientGone("the client went away")

    # -- deadline slots --------------------------------------------------------------------------

    def _take_slot(self, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        """Give the job a deadline slot, set when its deadline passes: from then on its rows in a
        running batch stop where they are, within DEADLINE_EVERY steps."""
        slot = self.free_slots.pop()  # its flag is clear: slots are cleared as they are released
        job.task.slot = slot
        job.slot_timer = loop.call_at(job.deadline, self._expire_slot, job)

    def _expire_slot(self, job: Job) -> None:
        """Set the job's flag (a tensor write, a few microseconds: only for jobs that need it)."""
        job.slot_timer = None
        job.slot_set = True
        self.expired[job.task.slot] = True

    def _release_slot(self, job: Job) -> None:
        """The job is over and none of its rows is running: its slot may be given out again."""
        slot = job.task.slot
        if slot == 0:
            return
        if job.slot_timer is not None:
            job.slot_timer.cancel()
            job.slot_timer = None
        if job.slot_set:
            self.expired[slot] = False
            job.slot_set = False
        job.task.slot = 0
        self.free_slots.append(slot)

    # -- the queue -------------------------------------------------------------------------------

    def _enqueue(self, job: Job) -> None:
        """Queue the pieces of the task's current round, at the back."""
        pieces = cut(job.task, self.policy.piece_rows)
        job.pending = len(pieces)
        self.queue.extend((job, p) for p in pieces)

    def _drop(self, job: Job) -> int:
        """Take the job's pieces out of the queue; return their rows."""
        rows = sum(p.rows for j, p in self.queue if j is job)
        if rows:
            self.queue = deque((j, p) for j, p in self.queue if j is not job)
        return rows

    def _take(self, limit: int) -> list[tuple[Job, Piece]]:
        """The policy's pieces for one batch of at most `limit` rows, out of the queue; expired
        ones are dropped and their tasks stopped."""
        now = asyncio.get_running_loop().time()
        queue = list(self.queue)
        choice = self.policy.choose([Queued(p.rows, j.served, j.expired(now)) for j, p in queue], limit)
        for i in choice.dropped:
            job = queue[i][0]
            if isinstance(job.task, SampleTask):  # answers with the names it has
                job.task.stop("deadline")
                self._piece_back(job)
            elif not job.fut.done():  # a score cannot answer in part
                job.cancelled = True
                job.fut.set_exception(DeadlineExceeded("the request waited past its deadline"))
        batch = [queue[i] for i in choice.taken]
        for job, piece in batch:
            job.served += piece.rows
        gone = set(choice.taken) | set(choice.dropped)
        if gone:
            self.queue = deque(e for i, e in enumerate(queue) if i not in gone)
        return batch

    # -- batches ---------------------------------------------------------------------------------

    def _start(self, back_to_back: bool = False) -> None:
        """Start batches of the queued pieces while the policy finds a core and work for it.
        `back_to_back`: the service is under load."""
        self.timer = None
        loop = asyncio.get_running_loop()
        while True:
            running = [b.rows for b in self.running]
            limit = self.policy.limit(self.queued_rows, running, back_to_back, self.split_rows)
            if limit is None:
                return
            pieces = self._take(limit)
            if not pieces:
                return
            try:
                plan = plan_batch([p for _, p in pieces])
                with torch.inference_mode():
                    handle = self.model.loop.launch(*plan.args)
            except Exception as e:  # a bug, not bad input: fail these requests, keep serving
                self._fail([j for j, _ in pieces], e)
                continue
            for job, _ in pieces:
                job.started = True
                job.running += 1
            batch = Batch(pieces, plan, handle, polled=False)
            batch.polled = self.policy.watch(batch.rows, back_to_back, bool(running)) is Watch.POLL
            self.split_rows = batch.rows if batch.polled else 0
            self.running.append(batch)
            if not batch.polled:
                handle.add_done_callback(lambda _, b=batch: self._wake(loop, b))
            elif self.poll_timer is None:
                self._poll_soon(loop)

    def _wake(self, loop: asyncio.AbstractEventLoop, batch: Batch) -> None:
        """On a torch pool thread, when a callback batch ends: hand it to the event loop, unless
        the service has shut down meanwhile (nothing is scheduled on a closed loop)."""
        if self.closed or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(self._finish, batch)

    def _poll(self) -> None:
        self.poll_timer = None
        self._collect()
        if any(b.polled for b in self.running) and not self.closed:
            self._poll_soon(asyncio.get_running_loop())

    def _poll_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        delay = self.policy.poll_delay([b.plan.rows for b in self.running if b.polled])
        if delay == 0:
            self.poll_timer = loop.call_soon(self._poll)
        else:
            self.poll_timer = loop.call_later(delay, self._poll)

    def _collect(self) -> None:
        """Finish the polled batches that have ended."""
        for batch in [b for b in self.running if b.polled and b.handle.done()]:
            self._finish(batch)

    def _finish(self, batch: Batch) -> None:
        if batch not in self.running:  # already failed by close()
            return
        self.running.remove(batch)
        loop = asyncio.get_running_loop()
        self.last_end = loop.time()
        arrived = bool(self.queue)  # requests queued while the batch ran: under load
        for job, _ in batch.pieces:
            job.running -= 1
        try:
            finish_batch(self.model, batch.plan, batch.handle.value())
        except Exception as e:  # a bug, not bad input: fail these requests, keep serving
            self._fail([j for j, _ in batch.pieces], e)
        else:
            for job, _ in batch.pieces:
                self._piece_back(job)
        for job, _ in batch.pieces:
            if job.running == 0 and job.fut.done():  # over, its last rows back: the slot is free
                self._release_slot(job)
        if self.queue and self.timer is None:
            self._start_soon(loop, 0.0, back_to_back=arrived or bool(self.running))

    def _start_soon(self, loop: asyncio.AbstractEventLoop, wait_s: float, back_to_back: bool) -> None:
        """Start the next batch after `wait_s`; with no wait, once the event loop has run the
        callbacks already queued: under load, the first steps of the requests it has just read,
        which then join this batch."""
        if wait_s > 0:
            self.timer = loop.call_later(wait_s, self._start, back_to_back)
        else:
            self.timer = loop.call_soon(self._start, back_to_back)

    def _piece_back(self, job: Job) -> None:
        """One piece of the job's round is back (or dropped); end the round with the last one."""
        job.pending -= 1
        if job.pending > 0 or job.fut.done():
            return
        task = job.task
        task.end_round()
        if job.cancelled:
            return
        if not task.done() and isinstance(task, SampleTask):
            if asyncio.get_running_loop().time() > job.deadline:
                task.stop("deadline")
            else:
                self._enqueue(job)  # the next round, behind what arrived meanwhile
                return
        job.fut.set_result(task)

    def _cancel(self, job: Job) -> None:
        """The client went away: no piece of it starts any more, and no further round."""
        job.cancelled = True
        if job.task.slot:  # its rows in a running batch stop too: nobody will read them
            job.slot_set = True
            self.expired[job.task.slot] = True
        if not job.started:
            stage = "queued"
        elif job.running:
            stage = "running"
        else:
            stage = "between_rounds"
        never_run = self._drop(job)
        if self.on_cancel is not None:
            self.on_cancel(stage, never_run)
        if not job.fut.done():
            job.fut.cancel()

    def _fail(self, jobs: list[Job], error: Exception) -> None:
        logger.error("batch of %d pieces failed on model %s", len(jobs), self.model.name, exc_info=error)
        for job in jobs:
            job.cancelled = True
            self._drop(job)  # its other pieces never run
            if not job.fut.done():
                job.fut.set_exception(error)

    def close(self) -> None:
        """Fail every request still waiting, queued or in a running batch: their results would
        never be handed out. Running batches end on their own; their callbacks do nothing."""
        self.closed = True
        for timer in (self.timer, self.poll_timer):
            if timer is not None:
                timer.cancel()
        self.timer = self.poll_timer = None
        jobs = [j for j, _ in self.queue] + [j for b in self.running for j, _ in b.pieces]
        self.queue.clear()
        self.running.clear()
        for job in jobs:
            if not job.fut.done():
                job.fut.set_exception(ServiceClosing("the service is shutting down"))


def warm_up(model: LoadedModel) -> None:
    """Run WARM_UP_RUNS small batches of every kind through the model's loop as the batches run
    (`launch`, optimised). A loop's first calls are slow while TorchScript optimises it (without
    this, the first requests took 36-48 ms each): the first call with no profiling call before it
    (as the lifespan sets), the first three with one. The service runs this in each model's
    loading thread (load_registry's `prepare`), beside the other files' loading."""
    for _ in range(WARM_UP_RUNS):
        tasks: list[Task] = [
            SampleTask(model, SampleSpec(n=2, sampling=Sampling(min_length=1, max_length=8)), seed=0),
            NextCharTask(model, "", Sampling(top_k=2)),
            ScoreTask(model, [model.vocab[1]]),
        ]
        plan = plan_batch([Piece.whole(t) for t in tasks])
        with torch.inference_mode():
            handle = model.loop.launch(*plan.args)
        finish_batch(model, plan, handle.wait())


class BatchRunner:
    """One ModelBatcher per loaded model; `await run(model, task)` from the event loop."""

    def __init__(
        self,
        registry: Registry,
        *,
        max_rows: int = MAX_BATCH_ROWS,
        parallel: int = 1,
        wait_s: float = 0.0,
        spin_rows: int = SPIN_ROWS,
        on_cancel: CancelHook | None = None,
    ) -> None:
        self.batchers = {
            name: ModelBatcher(
                m,
                max_rows=max_rows,
                parallel=parallel,
                wait_s=wait_s,
                spin_rows=spin_rows,
                on_cancel=on_cancel,
            )
            for name, m in registry.models.items()
        }

    async def run(
        self,
        model: LoadedModel,
        task: Task,
        timeout_s: float = math.inf,
        gone: Awaitable[object] | None = None,
    ) -> Task:
        return await self.batchers[model.name].run(task, timeout_s, gone)

    async def run_all(self, model: LoadedModel, tasks: Sequence[Task]) -> list[Task | BaseException]:
        return await self.batchers[model.name].run_all(tasks)

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()
