"""
Names sampled ahead for the requests that bring no seed.

A /generate without a seed gets a random one, returned with its names; the same request with that
seed gives the same names again, alone or in any batch. So a request without a seed may as well be
answered from results sampled earlier, each with its own seed: SamplePool keeps, for each kind of
small request asked for lately (model, every sampling field, the safe filter), a queue of (seed,
result) pairs sampled in batches of many at once, and a request of that kind takes one. It then
costs no model work of its own, and the batches that refill the queues are large, where a step's
cost is shared by many rows, rather than the few rows that a small request's batch holds under load.

- What is sampled ahead is asked for: a kind's first request misses and starts a refill of
  FIRST_REFILL results; each later refill asks for twice as many as the last, up to the pool's
  size (in names: 1,024 results of one name, 64 of sixteen), whenever the queue falls to half of
  what was last asked for. A kind asked for once costs one small batch; a kind asked for steadily
  keeps a full queue. An idle service does no work.
- At most `kinds` kinds are kept; the one used least recently goes first, with its results.
- A result is served once and never again. Results come from the same tasks as a seeded request's
  (no deadline: nothing a clock decides), so every one is what its seed gives.

No FastAPI here: the pool needs only the batch runner.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from app.inference.batching import BatchRunner, ServiceClosing
from app.inference.loaded import LoadedModel
from app.inference.safety import SafetyFilter
from app.inference.sampling import SampleResult, SampleSpec, SampleTask

logger = logging.getLogger("namegen.pool")

FIRST_REFILL = 8  # results a kind's first refill samples
MAX_POOLED_N = 16  # requests for more names than this are sampled as they come

Kind = tuple[str, SampleSpec, bool]  # model name, what is sampled, whether the safe filter applies


@dataclass(eq=False)
class Queue:
    model: LoadedModel
    spec: SampleSpec
    safety: SafetyFilter | None
    results: deque[tuple[int, SampleResult]] = field(default_factory=deque)
    asked: int = 0  # results the last refill asked for (0: none yet)
    refill: asyncio.Task[None] | None = None


class SamplePool:
    """Queues of results sampled ahead, one per kind of small seedless request; use from the event
    loop. `size`: names a queue holds at most (0: no pool); `kinds`: queues kept at most."""

    def __init__(self, runner: BatchRunner, size: int, kinds: int) -> None:
        self.runner = runner
        self.size = size
        self.kinds = kinds
        self.queues: OrderedDict[Kind, Queue] = OrderedDict()
        self.seeds = random.Random()  # any 32-bit seed will do; a seeded Random is cheap
        self.closed = False

    def take(
        self, model: LoadedModel, spec: SampleSpec, safety: SafetyFilter | None
    ) -> tuple[int, SampleResult] | None:
        """A (seed, result) for this kind of request, or None (the caller samples it itself);
        either way, the queue is refilled when it runs low."""
        if self.size == 0 or self.closed or spec.n > MAX_POOLED_N:
            return None
        kind = (model.name, spec, safety is not None)
        queue = self.queues.get(kind)
        if queue is None:
            queue = self.queues[kind] = Queue(model, spec, safety)
            if len(self.queues) > self.kinds:
                self._drop(self.queues.popitem(last=False)[1])
        else:
            self.queues.move_to_end(kind)
        taken = queue.results.popleft() if queue.results else None
        if queue.refill is None and len(queue.results) <= queue.asked // 2:
            # the size counts names: a queue of larger requests holds fewer of them
            want = min(max(1, self.size // spec.n), max(FIRST_REFILL, 2 * queue.asked))
            queue.asked = want
            queue.refill = asyncio.ensure_future(self._refill(queue, want - len(queue.results)))
        return taken

    async def _refill(self, queue: Queue, count: int) -> None:
        seeds = [self.seeds.getrandbits(32) for _ in range(count)]
        tasks = [SampleTask(queue.model, queue.spec, seed, queue.safety) for seed in seeds]
        try:
            outcomes = await self.runner.run_all(queue.model, tasks)
        except ServiceClosing:
            return
        finally:
            queue.refill = None
        for seed, task, outcome in zip(seeds, tasks, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                logger.debug("a refill task of model %s failed: %r", queue.model.name, outcome)
                continue
            queue.results.append((seed, task.result()))

    def _drop(self, queue: Queue) -> None:
        if queue.refill is not None:
            queue.refill.cancel()
        queue.results.clear()

    def close(self) -> None:
        """Stop refilling; the batch runner fails what is queued when it closes."""
        self.closed = True
        for queue in self.queues.values():
            self._drop(queue)
        self.queues.clear()
