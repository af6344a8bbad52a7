"""
The micro-batching policy: when a batch starts, what it takes, and how the event loop learns that
it has ended. Pure functions of what is queued and running, with no timers, futures or event loop:
app/inference/batching.py is the driver that keeps the queue and the batches and asks these.

- Start: a request that finds its model idle starts a batch at once, unless the model is under
  load (a batch ended within BUSY_WINDOW_S); then the batch starts once the event loop has handed
  the requests it has just read to their handlers, so that they join it. While batches run, a
  further one starts only when a core is free and there is work for it (PARALLEL_ROWS rows queued,
  or a running batch that large); small requests keep sharing one batch at a time.
- Size: a batch holds at most `max_rows` rows; when the queue holds work for several free cores,
  each batch takes its share, so one large request runs on all of them at once. Under load, small
  requests fall into two groups that take turns (one computes while the event loop reads and
  answers the other), and whatever split they start in repeats itself; a small batch that follows
  a small polled one takes at most the mean of that batch's rows and the queued rows, so an
  uneven split (4 and 28 requests) evens out within a few batches.
- Order: the pieces of the requests served least so far first (rows taken, every round counted),
  oldest first among equals, each taken if it still fits: a new request goes ahead of the later
  pieces and rounds of a large one. Pieces of sampling tasks past their deadline are dropped.
- Hand-over: a batch started on an idle model, or one of PARALLEL_ROWS rows or more, wakes the
  event loop with a callback. Any other batch (small, under load) is polled: on every turn of the
  event loop while every polled batch holds at most `spin_rows` rows, every POLL_S otherwise.

docs/performance.md says why each rule is shaped so, with the measurements.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

from app.config import MAX_BATCH_ROWS, SPIN_ROWS

BUSY_WINDOW_S = 0.05  # a model whose last batch ended this recently counts as under load
POLL_S = 0.001  # how often polled batches over spin_rows are checked (uvloop's timers count in ms)
PARALLEL_ROWS = 64  # rows of work, queued or running, worth a batch on another core


class Start(enum.Enum):
    """What a newly queued request does about starting a batch."""

    NOW = "now"  # start batches at once
    AFTER_READS = "after reads"  # start once the event loop has run the callbacks queued now
    NONE = "none"  # a start is already scheduled, or nothing may start


class Watch(enum.Enum):
    """How the event loop learns that a batch has ended."""

    CALLBACK = "callback"  # the batch's thread wakes it
    POLL = "poll"  # it checks on each request for the model, and on its own turns or timer


@dataclass(frozen=True)
class Queued:
    """A queued piece, as the policy sees it."""

    rows: int
    served: int  # rows of its request taken into batches so far, every round counted
    expired: bool  # a sampling task past its deadline: dropped, never run


@dataclass(frozen=True)
class Choice:
    """The queue positions a batch takes, in the order taken, and those it drops (expired)."""

    taken: list[int]
    dropped: list[int]


@dataclass(frozen=True, kw_only=True)
class BatchPolicy:
    max_rows: int = MAX_BATCH_ROWS  # rows of one batch at most
    parallel: int = 1  # batches of one model running at once at most
    spin_rows: int = SPIN_ROWS  # polled batches this small are checked on every turn of the loop

    @property
    def piece_rows(self) -> int:
        """Rows of a request's piece at most: small enough that a request of max_rows runs as
        `parallel` batches at once."""
        return max(1, self.max_rows // self.parallel)

    def on_arrival(self, scheduled: bool, running: int, idle_s: float) -> Start:
        """A request has been queued: `scheduled`, a start is already pending; `running`, batches
        running; `idle_s`, time since the model's last batch ended."""
        if scheduled:
            return Start.NONE
        if not running and idle_s < BUSY_WINDOW_S:
            return Start.AFTER_READS  # under load: let the requests just read join
        return Start.NOW

    def worth_another(self, queued: int, running: Sequence[int]) -> bool:
        """Whether to start a batch beside `running` (their rows): enough work for another core,
        queued or running, so that a small request need not wait behind a large batch."""
        return queued >= PARALLEL_ROWS or any(rows >= PARALLEL_ROWS for rows in running)

    def limit(self, queued: int, running: Sequence[int], back_to_back: bool, split_rows: int) -> int | None:
        """Rows the next batch may take, or None when none should start now. `queued`: rows
        queued; `running`: rows of each running batch; `back_to_back`: under load; `split_rows`:
        rows of the last batch when it was small and polled, else 0."""
        if not queued or len(running) >= self.parallel:
            return None
        if running and not self.worth_another(queued, running):
            return None  # small work: it joins the next batch, when the running one ends
        limit = self.max_rows
        free = self.parallel - len(running)
        if free > 1 and queued >= PARALLEL_ROWS * free:
            limit = min(limit, math.ceil(queued / free))  # a share for each free core
        if back_to_back and not running and 0 < split_rows < queued < PARALLEL_ROWS:
            limit = min(limit, math.ceil((queued + split_rows) / 2))  # the even split
        return limit

    def choose(self, queue: Sequence[Queued], limit: int) -> Choice:
        """The pieces for one batch of at most `limit` rows (at least one piece): least served
        first, oldest first among equals, each taken if it still fits; expired ones dropped."""
        taken: list[int] = []
        dropped: list[int] = []
        rows = 0
        for i in sorted(range(len(queue)), key=lambda i: (queue[i].served, i)):
            piece = queue[i]
            if piece.expired:
                dropped.append(i)
            elif not taken or rows + piece.rows <= limit:
                taken.append(i)
                rows += piece.rows
        return Choice(taken, dropped)

    def watch(self, rows: int, back_to_back: bool, others_running: bool) -> Watch:
        """How to learn that a batch of `rows` request rows has ended."""
        if (back_to_back or others_running) and rows < PARALLEL_ROWS:
            return Watch.POLL
        return Watch.CALLBACK

    def poll_delay(self, polled: Sequence[int]) -> float:
        """Seconds until the polled batches (their padded rows) are checked again: 0, the next turn
        of the event loop, while every one of them is small; POLL_S otherwise."""
        return 0.0 if all(rows <= self.spin_rows for rows in polled) else POLL_S
