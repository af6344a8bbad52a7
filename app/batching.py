"""
Micro-batching: concurrent requests for the same model run as one batch.

Each model has one worker thread. Requests put their task on its queue and await the result; the
worker takes everything queued (up to a row limit), runs it through `run_batch` as one batch, hands
back the finished tasks and keeps the ones that want another sampling round for the next batch. No
request waits on a timer: when the worker is idle a lone request runs at once, and when it is busy
the requests that arrive meanwhile form the next batch (as TorchServe's dynamic batching or Ray
Serve's @serve.batch do, with no added delay). Results do not depend on the batch a task lands in
(see app/sampling.py), so a seed gives the same names under any load. No FastAPI here.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable

import torch

from app.registry import LoadedModel, Registry
from app.sampling import Task, run_batch

logger = logging.getLogger("namegen.batching")

_STOP = object()


class ModelWorker:
    def __init__(self, model: LoadedModel, max_rows: int, wait_s: float = 0.0) -> None:
        self.model = model
        self.max_rows = max_rows
        self.wait_s = wait_s  # after the first task, how long to wait for more to join the batch
        self._queue: queue.SimpleQueue[tuple[Task, _LoopFuture] | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"namegen-{model.name}", daemon=True)
        self._thread.start()

    def submit_async(self, task: Task, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Task]:
        """Queue a task from an event loop; the asyncio future completes in that loop. The worker
        wakes each loop once per batch, not once per request."""
        fut: asyncio.Future[Task] = loop.create_future()
        self._queue.put((task, _LoopFuture(loop, fut)))
        return fut

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        carry: list[tuple[Task, _LoopFuture]] = []  # tasks that want another round
        stopping = False
        while not (stopping and not carry):
            batch, rows = carry, sum(t.rows for t, _ in carry)
            carry = []
            block, deadline = not batch, 0.0
            while rows < self.max_rows:
                try:
                    if block:
                        item = self._queue.get()
                        deadline = time.monotonic() + self.wait_s
                    else:
                        left = deadline - time.monotonic()
                        item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                block = False
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, tuple)
                batch.append(item)
                rows += item[0].rows
            if not batch:
                continue
            wakes: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]] = {}
            try:
                run_batch(self.model, [t for t, _ in batch])
            except Exception as e:  # a bug, not bad input: fail these requests, keep serving
                logger.exception("batch of %d tasks failed on model %s", len(batch), self.model.name)
                for _, fut in batch:
                    _complete(fut, None, e, wakes)
            else:
                for task, fut in batch:
                    if task.done():
                        _complete(fut, task, None, wakes)
                    else:
                        carry.append((task, fut))
            for loop, callbacks in wakes.items():
                loop.call_soon_threadsafe(_run_all, callbacks)


class _LoopFuture:
    """An asyncio future of some event loop, completed from the worker thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Task]) -> None:
        self.loop, self.fut = loop, fut


def _complete(
    fut: _LoopFuture,
    task: Task | None,
    error: BaseException | None,
    wakes: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]],
) -> None:
    """Complete `fut` with the task or the error, later, from one callback per event loop
    (collected in `wakes`)."""
    target = fut.fut

    def resolve() -> None:
        if target.cancelled():  # the client went away
            return
        if error is not None:
            target.set_exception(error)
        else:
            target.set_result(task)  # type: ignore[arg-type]

    wakes.setdefault(fut.loop, []).append(resolve)


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


class BatchRunner:
    """One ModelWorker per loaded model; `await run(model, task)` from the event loop."""

    def __init__(self, registry: Registry, max_rows: int = 8192, wait_s: float = 0.0) -> None:
        self.workers = {name: ModelWorker(m, max_rows, wait_s) for name, m in registry.models.items()}

    async def run(self, model: LoadedModel, task: Task) -> Task:
        return await self.workers[model.name].submit_async(task, asyncio.get_running_loop())

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
