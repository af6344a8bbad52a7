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
from concurrent.futures import Future

import torch

from app.registry import LoadedModel, Registry
from app.sampling import Task, run_batch

logger = logging.getLogger("namegen.batching")

_STOP = object()


class ModelWorker:
    def __init__(self, model: LoadedModel, max_rows: int) -> None:
        self.model = model
        self.max_rows = max_rows
        self.batches = 0  # batches run, for metrics and tests
        self.tasks = 0  # tasks run (a task counts again for every round)
        self._queue: queue.SimpleQueue[tuple[Task, Future[Task]] | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"namegen-{model.name}", daemon=True)
        self._thread.start()

    def submit(self, task: Task) -> Future[Task]:
        fut: Future[Task] = Future()
        self._queue.put((task, fut))
        return fut

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        carry: list[tuple[Task, Future[Task]]] = []  # tasks that want another round
        stopping = False
        while not (stopping and not carry):
            batch, rows = carry, sum(t.rows for t, _ in carry)
            carry = []
            block = not batch
            while rows < self.max_rows:
                try:
                    item = self._queue.get(block=block)
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
            try:
                run_batch(self.model, [t for t, _ in batch])
            except Exception as e:  # a bug, not bad input: fail these requests, keep serving
                logger.exception("batch of %d tasks failed on model %s", len(batch), self.model.name)
                for _, fut in batch:
                    fut.set_exception(e)
                continue
            self.batches += 1
            self.tasks += len(batch)
            for task, fut in batch:
                if task.done():
                    fut.set_result(task)
                else:
                    carry.append((task, fut))


class BatchRunner:
    """One ModelWorker per loaded model; `await run(model, task)` from the event loop."""

    def __init__(self, registry: Registry, max_rows: int = 8192) -> None:
        self.workers = {name: ModelWorker(m, max_rows) for name, m in registry.models.items()}

    async def run(self, model: LoadedModel, task: Task) -> Task:
        return await asyncio.wrap_future(self.workers[model.name].submit(task))

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
