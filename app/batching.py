"""
Micro-batching: concurrent requests for the same model run as one batch.

Each model has a batcher that lives in the event loop. Requests add their task to its queue and
await the result. When no batch of that model is running, the queued tasks (up to a row limit)
start at once as one batch; while one runs, the requests that arrive meanwhile form the next. A
finished batch hands back the tasks that are done and puts the ones that want another sampling
round at the head of the queue.

The event loop lays a batch out and reads its results (plain Python, fast); the batch itself runs
on torch's inter-op thread pool through the scripted loop's `launch`, holding no GIL. The event
loop learns that a batch has ended in one of two ways:
- a batch started by a request that found its model idle registers a callback, which wakes the
  event loop at once (on a quiet server the GIL it needs is free);
- a batch started straight after the previous one (the service is under load) is polled: the
  event loop checks it whenever a request for the model arrives, and every POLL_S. Under load the
  callback's GIL hand-overs would wait on the busy event loop.
docs/performance.md has the measurements behind both choices (`python -m bench.http`).

Results do not depend on the batch a task lands in (see app/sampling.py), so a seed gives the same
names under any load. No FastAPI here.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from typing import Any

import torch

from app.registry import LoadedModel, Registry
from app.sampling import (
    BatchPlan,
    NextCharTask,
    SampleSpec,
    SampleTask,
    ScoreTask,
    Task,
    finish_batch,
    plan_batch,
)

logger = logging.getLogger("namegen.batching")


BUSY_WINDOW_S = 0.05  # a model whose last batch ended this recently counts as under load
POLL_S = 0.001  # how often the event loop checks on a polled batch (uvloop's timers count in ms)

Waiting = tuple[Task, asyncio.Future[Task]]  # a queued task and the future its request awaits


class ModelBatcher:
    """The batches of one model; at most one runs at a time. Use from one event loop."""

    def __init__(self, model: LoadedModel, max_rows: int, wait_s: float = 0.0) -> None:
        self.model = model
        self.max_rows = max_rows  # a batch takes queued tasks until it has at least this many rows
        # under load, how long a task that finds no batch running waits for others to join it
        # (0: it starts at once). On a quiet model (no batch ended within BUSY_WINDOW_S) a task
        # always starts at once: a lone request never waits.
        self.wait_s = wait_s
        self._queue: deque[Waiting] = deque()
        self._running = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_end = -math.inf  # event-loop time the last batch ended
        # the running batch, when it is polled rather than waited for with a callback
        self._polled: tuple[list[Waiting], BatchPlan, torch.futures.Future[Any]] | None = None
        self._poll_timer: asyncio.TimerHandle | None = None

    async def run(self, task: Task) -> Task:
        """Run `task` to completion in as many batches as it needs (each shared with whatever
        else is queued) and return it."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Task] = loop.create_future()
        self._queue.append((task, fut))
        if self._polled is not None and self._polled[2].done():
            self._collect()  # the running batch has ended: hand it out, and start the next one
        if not self._running and self._timer is None:
            if self.wait_s > 0 and loop.time() - self._last_end < BUSY_WINDOW_S:
                self._timer = loop.call_later(self.wait_s, self._start, True)  # under load: polled
            else:
                self._start()
        return await fut

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
            plan = plan_batch(m, tasks)
            with torch.inference_mode():
                finish_batch(m, plan, m.loop.launch(*plan.args).wait())

    def _start(self, back_to_back: bool = False) -> None:
        """Start a batch of the queued tasks. `back_to_back`: the service is under load (requests
        queued while the previous batch ran, or waited for others to join them): poll it."""
        self._timer = None
        batch: list[Waiting] = []
        rows = 0
        while self._queue and rows < self.max_rows:
            task, fut = self._queue.popleft()
            if fut.cancelled():  # the client went away before its batch started
                continue
            batch.append((task, fut))
            rows += task.rows
        if not batch:
            return
        loop = asyncio.get_running_loop()
        try:
            plan = plan_batch(self.model, [t for t, _ in batch])
            with torch.inference_mode():
                handle = self.model.loop.launch(*plan.args)
        except Exception as e:  # a bug, not bad input: fail these requests, keep serving
            self._fail(batch, e)
            if self._queue:
                loop.call_soon(self._start)
            return
        self._running = True
        if back_to_back:
            self._polled = batch, plan, handle
            self._poll_timer = loop.call_later(POLL_S, self._poll)
            return

        def wake(done: torch.futures.Future[Any]) -> None:  # on a torch pool thread
            loop.call_soon_threadsafe(self._finish, batch, plan, done)

        handle.add_done_callback(wake)

    def _poll(self) -> None:
        self._poll_timer = None
        if self._polled is None:
            return
        if self._polled[2].done():
            self._collect()
        else:
            self._poll_timer = asyncio.get_running_loop().call_later(POLL_S, self._poll)

    def _collect(self) -> None:
        """Finish the polled batch, which has ended."""
        assert self._polled is not None
        batch, plan, handle = self._polled
        self._polled = None
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
        self._finish(batch, plan, handle)

    def _finish(self, batch: list[Waiting], plan: BatchPlan, done: torch.futures.Future[Any]) -> None:
        self._running = False
        self._last_end = asyncio.get_running_loop().time()
        arrived = bool(self._queue)  # requests queued while the batch ran: under load
        try:
            finish_batch(self.model, plan, done.value())
        except Exception as e:  # a bug, not bad input: fail these requests, keep serving
            self._fail(batch, e)
        else:
            carry = []  # tasks that want another round go ahead of newer requests
            for task, fut in batch:
                if fut.cancelled():
                    continue
                if task.done():
                    fut.set_result(task)
                else:
                    carry.append((task, fut))
            self._queue.extendleft(reversed(carry))
        if self._queue and self._timer is None:
            self._start(back_to_back=arrived)

    def _fail(self, batch: list[Waiting], error: Exception) -> None:
        logger.error("batch of %d tasks failed on model %s", len(batch), self.model.name, exc_info=error)
        for _, fut in batch:
            if not fut.done():
                fut.set_exception(error)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._poll_timer is not None:
            self._poll_timer.cancel()
            self._poll_timer = None
        if self._polled is not None:  # nothing will hand this batch out any more
            self._queue.extendleft(self._polled[0])
            self._polled = None
        while self._queue:
            _, fut = self._queue.popleft()
            if not fut.done():
                fut.set_exception(RuntimeError("the service is shutting down"))


class BatchRunner:
    """One ModelBatcher per loaded model; `await run(model, task)` from the event loop."""

    def __init__(self, registry: Registry, max_rows: int = 8192, wait_s: float = 0.0) -> None:
        self.batchers = {name: ModelBatcher(m, max_rows, wait_s) for name, m in registry.models.items()}
        for batcher in self.batchers.values():
            batcher.warm_up()

    async def run(self, model: LoadedModel, task: Task) -> Task:
        return await self.batchers[model.name].run(task)

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()
