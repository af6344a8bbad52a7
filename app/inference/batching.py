"""
Micro-batching: concurrent requests for the same model run as one batch, within bounds.

Each model has a batcher that lives in the event loop. A request's task is cut into pieces of at
most `piece_rows` rows (app/inference/sampling.py: a piece keeps its rows' numbers, so the names do not
depend on the cut) and queued. A batch takes queued pieces while they fit in `max_rows`: the cap is
a true bound on the rows, and so on the memory, of any batch. While
batches run, the requests that arrive form the next one, which starts once the event loop has
handed the requests it has just read to their handlers. Up to `parallel` batches of a model run
at once on torch's inter-op threads, each on a core of its own: a further batch starts when a core
is free and there is enough work for it (heavy work queued or running); small requests keep
sharing one batch at a time, which is what they do best.

Under load, small requests settle into two groups that take turns: one computes while the event
loop answers and reads the other. Each batch takes what was queued while the previous one ran, so
whatever split the groups fall into repeats itself, and an uneven one (4 and 28 of 32 clients)
leaves the event loop with little to do while the large group computes. When a small batch (fewer
than PARALLEL_ROWS rows) follows a small polled one under load, it takes at most the mean of that
batch's rows and the queued rows: the groups even out within a few batches (16 and 16). Larger
work keeps its batches whole.

Fairness: a batch takes first the pieces of the requests it has served least (rows taken so far,
every round counted; oldest first among equals), so a new request goes into the next batch ahead
of the remaining pieces and later rounds of a large one, and waits for at most the batches already
running. Bounds: a sampling task past its deadline has its unstarted pieces
dropped and ends with what it found; a request whose client has gone (`gone`) is cancelled: its
unstarted pieces never run and no further round starts; `on_cancel` counts each case.

The event loop lays a batch out and reads its results (plain Python, fast); the batch itself runs
on torch's inter-op thread pool through the scripted loop's `launch`, holding no GIL. The event
loop learns that a batch has ended in one of two ways:
- a batch started by a request that found its model idle, or one of at least PARALLEL_ROWS rows,
  registers a callback, which wakes the event loop at once (on a quiet server the GIL it needs is
  free; a large batch ends a few times a second at most, so its one hand-over costs little, and the
  timer below would leave its core idle for up to POLL_S);
- any other batch (small, under load) is polled: the event loop checks the running batches
  whenever a request for the model arrives, and, while they run, on every turn of the event loop
  when each holds at most `spin_rows` rows (a small batch: it ends within a few milliseconds),
  every POLL_S otherwise. Under load the callback's GIL hand-overs would wait on the busy event
  loop; and once every client's request is in the running batch or queued behind it, none arrives
  to collect the batch, so a small one would wait for the timer, which uvloop counts in whole
  milliseconds, about as long as it took to compute. Checking on every turn means the event loop
  does not sleep while a small batch runs under load: it spins for at most that batch's time.
docs/performance.md has the measurements behind these choices (`python -m bench.http`).

No FastAPI here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from app.config import SPIN_ROWS
from app.inference.registry import LoadedModel, Registry
from app.inference.sampling import (
    BatchPlan,
    NextCharTask,
    Piece,
    SampleSpec,
    SampleTask,
    ScoreTask,
    Task,
    cut,
    finish_batch,
    plan_batch,
)

logger = logging.getLogger("namegen.batching")

BUSY_WINDOW_S = 0.05  # a model whose last batch ended this recently counts as under load
POLL_S = 0.001  # how often the event loop checks polled batches over spin_rows (uvloop's timers: ms)
PARALLEL_ROWS = 64  # rows of work, queued or running, worth a batch on another core

CancelHook = Callable[[str, int], None]  # (stage, rows never run) for each cancelled request


class ServiceClosing(RuntimeError):
    """The service shut down before the request's batch could be handed out."""


class ClientGone(Exception):
    """The request's client went away; its work was cancelled."""


@dataclass(eq=False)
class Job:
    """One request's task in the batcher."""

    task: Task
    fut: asyncio.Future[Task]
    deadline: float  # event-loop time; past it a sampling task starts no further piece or round
    pending: int = 0  # pieces of the current round not yet back
    running: int = 0  # of those, how many are in a running batch
    started: bool = False  # whether any piece of it has run or is running
    cancelled: bool = False
    served: int = 0  # rows of it taken into batches so far, every round counted


@dataclass(eq=False)
class Batch:
    pieces: list[tuple[Job, Piece]]
    plan: BatchPlan
    handle: torch.futures.Future[Any]
    polled: bool


@dataclass(eq=False)
class ModelBatcher:
    """The batches of one model. Use from one event loop."""

    model: LoadedModel
    max_rows: int = 1024  # rows of one batch at most
    parallel: int = 1  # batches of this model running at once at most
    wait_s: float = 0.0  # under load, how long a task that finds no batch running waits for others
    spin_rows: int = SPIN_ROWS  # polled batches this small are checked on every turn of the event loop
    on_cancel: CancelHook | None = None
    piece_rows: int = field(init=False)
    _queue: deque[tuple[Job, Piece]] = field(init=False, default_factory=deque)
    _queued: int = field(init=False, default=0)  # rows in the queue, of requests not cancelled
    _running: list[Batch] = field(init=False, default_factory=list)
    _timer: asyncio.Handle | None = field(init=False, default=None)
    _poll_timer: asyncio.Handle | None = field(init=False, default=None)
    _last_end: float = field(init=False, default=-math.inf)  # event-loop time the last batch ended
    _closed: bool = field(init=False, default=False)
    # rows of the last batch when it was small and polled (under load), else 0: the next batch
    # under load takes at most the mean of these and the queued rows
    _split_rows: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        # pieces small enough that one large request fills every core: n = max_rows runs as
        # `parallel` batches at once
        self.piece_rows = max(1, self.max_rows // self.parallel)

    async def run(
        self, task: Task, timeout_s: float = math.inf, gone: Awaitable[object] | None = None
    ) -> Task:
        """Run `task` to completion in as many batches as it needs and return it. A sampling
        task ends at `timeout_s` with what it has; when `gone` completes first (the client went
        away), the task is cancelled and ClientGone raised."""
        if self._closed:
            raise ServiceClosing("the service is shutting down")
        loop = asyncio.get_running_loop()
        job = Job(task, loop.create_future(), loop.time() + timeout_s)
        self._enqueue(job)
        self._collect()  # a polled batch that has ended: hand it out, freeing its core
        if self._timer is None:
            if not self._running and loop.time() - self._last_end < BUSY_WINDOW_S:
                self._start_soon(loop, self.wait_s, back_to_back=True)  # under load
            else:
                self._start(back_to_back=bool(self._running))
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

    def warm_up(self, runs: int = 3) -> None:
        """Run a small batch of every kind through `launch` a few times, blocking. TorchScript
        profiles and optimises a method on its first calls, running them slowly and in the calling
        thread; done here, at start-up, instead of in the first requests' event loop."""
        m = self.model
        for _ in range(runs):
            tasks: list[Task] = [
                SampleTask(m, SampleSpec(n=2, max_length=8), seed=0),
                NextCharTask(m, "", 1.0, 2),
                ScoreTask(m, [m.vocab[1]]),
            ]
            plan = plan_batch(m, [Piece.whole(t) for t in tasks])
            with torch.inference_mode():
                finish_batch(m, plan, m.loop.launch(*plan.args).wait())

    # -- the queue -------------------------------------------------------------------------------

    def _enqueue(self, job: Job) -> None:
        """Queue the pieces of the task's current round, at the back."""
        pieces = cut(job.task, self.piece_rows)
        job.pending = len(pieces)
        self._queue.extend((job, p) for p in pieces)
        self._queued += job.task.rows

    def _drop(self, job: Job) -> int:
        """Take the job's pieces out of the queue; return their rows."""
        rows = sum(p.rows for j, p in self._queue if j is job)
        if rows:
            self._queue = deque((j, p) for j, p in self._queue if j is not job)
            self._queued -= rows
        return rows

    def _worth_another(self) -> bool:
        """Whether to start a batch while others run: enough work for another core, queued or
        running (a small request then need not wait behind a large batch)."""
        return self._queued >= PARALLEL_ROWS or any(b.plan.rows >= PARALLEL_ROWS for b in self._running)

    def _batch_limit(self) -> int:
        """Rows for the next batch: max_rows, or, when the queue holds work for several free
        cores, its share of it, so that one large request runs on all of them at once."""
        free = self.parallel - len(self._running)
        if free > 1 and self._queued >= PARALLEL_ROWS * free:
            return min(self.max_rows, math.ceil(self._queued / free))
        return self.max_rows

    def _take(self, limit: int) -> list[tuple[Job, Piece]]:
        """Queued pieces for one batch, up to `limit` rows (at least one piece): the pieces of the
        requests served least so far first (a new request before the later rounds and pieces of
        a large one), oldest first among equals, each taken if it still fits. Drops the pieces of
        sampling tasks past their deadline."""
        now = asyncio.get_running_loop().time()
        queue = list(self._queue)
        order = sorted(range(len(queue)), key=lambda i: (queue[i][0].served, i))
        batch: list[tuple[Job, Piece]] = []
        taken: set[int] = set()
        rows = 0
        for i in order:
            job, piece = queue[i]
            if isinstance(job.task, SampleTask) and now > job.deadline:
                taken.add(i)
                self._queued -= piece.rows
                job.task.stop("deadline")
                self._piece_back(job)
                continue
            if batch and rows + piece.rows > limit:
                continue
            taken.add(i)
            self._queued -= piece.rows
            batch.append((job, piece))
            rows += piece.rows
        for job, piece in batch:
            job.served += piece.rows
        if taken:
            self._queue = deque(e for i, e in enumerate(queue) if i not in taken)
        return batch

    # -- batches ---------------------------------------------------------------------------------

    def _start(self, back_to_back: bool = False) -> None:
        """Start batches of the queued pieces while a core is free and there is work for it.
        `back_to_back`: the service is under load: poll them."""
        self._timer = None
        loop = asyncio.get_running_loop()
        while self._queue and len(self._running) < self.parallel:
            if self._running and not self._worth_another():
                return  # small work: it joins the next batch, when the running one ends
            limit = self._batch_limit()
            if back_to_back and not self._running and 0 < self._split_rows < self._queued < PARALLEL_ROWS:
                # the even split (module docstring): the rest waits for the next batch
                limit = min(limit, math.ceil((self._queued + self._split_rows) / 2))
            pieces = self._take(limit)
            if not pieces:
                return
            try:
                plan = plan_batch(self.model, [p for _, p in pieces])
                with torch.inference_mode():
                    handle = self.model.loop.launch(*plan.args)
            except Exception as e:  # a bug, not bad input: fail these requests, keep serving
                self._fail([j for j, _ in pieces], e)
                continue
            for job, _ in pieces:
                job.started = True
                job.running += 1
            rows = sum(p.rows for _, p in pieces)  # the requests' rows, not the padding
            polled = (back_to_back or bool(self._running)) and rows < PARALLEL_ROWS
            batch = Batch(pieces, plan, handle, polled)
            self._split_rows = rows if polled else 0
            self._running.append(batch)
            if polled:
                if self._poll_timer is None:
                    self._poll_soon(loop)
            else:
                handle.add_done_callback(lambda _, b=batch: self._wake(loop, b))

    def _wake(self, loop: asyncio.AbstractEventLoop, batch: Batch) -> None:
        """On a torch pool thread, when a callback batch ends: hand it to the event loop, unless
        the service has shut down meanwhile (nothing is scheduled on a closed loop)."""
        if self._closed or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
            loop.call_soon_threadsafe(self._finish, batch)

    def _poll(self) -> None:
        self._poll_timer = None
        self._collect()
        if any(b.polled for b in self._running) and not self._closed:
            self._poll_soon(asyncio.get_running_loop())

    def _poll_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """Check the polled batches again: on the event loop's next turn while every one of them is
        small, in POLL_S otherwise."""
        if all(b.plan.rows <= self.spin_rows for b in self._running if b.polled):
            self._poll_timer = loop.call_soon(self._poll)
        else:
            self._poll_timer = loop.call_later(POLL_S, self._poll)

    def _collect(self) -> None:
        """Finish the polled batches that have ended."""
        for batch in [b for b in self._running if b.polled and b.handle.done()]:
            self._finish(batch)

    def _finish(self, batch: Batch) -> None:
        if batch not in self._running:  # already failed by close()
            return
        self._running.remove(batch)
        loop = asyncio.get_running_loop()
        self._last_end = loop.time()
        arrived = bool(self._queue)  # requests queued while the batch ran: under load
        try:
            finish_batch(self.model, batch.plan, batch.handle.value())
        except Exception as e:  # a bug, not bad input: fail these requests, keep serving
            self._fail([j for j, _ in batch.pieces], e)
        else:
            for job, _ in batch.pieces:
                job.running -= 1
                self._piece_back(job)
        if self._queue and self._timer is None:
            self._start_soon(loop, 0.0, back_to_back=arrived or bool(self._running))

    def _start_soon(self, loop: asyncio.AbstractEventLoop, wait_s: float, back_to_back: bool) -> None:
        """Start the next batch after `wait_s`; with no wait, once the event loop has run the
        callbacks already queued. Under load those are the first steps of the requests it has
        just read, which then join this batch instead of waiting for the next one: batches of about
        16 requests rather than 5 at 32 connections, and a fifth less CPU per small request
        (docs/performance.md). A lone request still starts at once (`run`)."""
        if wait_s > 0:
            self._timer = loop.call_later(wait_s, self._start, back_to_back)
        else:
            self._timer = loop.call_soon(self._start, back_to_back)

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
        self._closed = True
        for timer in (self._timer, self._poll_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._poll_timer = None
        jobs = [j for j, _ in self._queue] + [j for b in self._running for j, _ in b.pieces]
        self._queue.clear()
        self._queued = 0
        self._running.clear()
        for job in jobs:
            if not job.fut.done():
                job.fut.set_exception(ServiceClosing("the service is shutting down"))


class BatchRunner:
    """One ModelBatcher per loaded model; `await run(model, task)` from the event loop."""

    def __init__(
        self,
        registry: Registry,
        max_rows: int = 1024,
        wait_s: float = 0.0,
        parallel: int = 1,
        on_cancel: CancelHook | None = None,
        spin_rows: int = SPIN_ROWS,
    ) -> None:
        self.batchers = {
            name: ModelBatcher(m, max_rows, parallel, wait_s, spin_rows, on_cancel)
            for name, m in registry.models.items()
        }
        for batcher in self.batchers.values():
            batcher.warm_up()

    async def run(
        self,
        model: LoadedModel,
        task: Task,
        timeout_s: float = math.inf,
        gone: Awaitable[object] | None = None,
    ) -> Task:
        return await self.batchers[model.name].run(task, timeout_s, gone)

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()
