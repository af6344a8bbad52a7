"""
One batch of tasks through a model's scripted loop (app/inference/engine.py): the layout of their
rows (plan_batch), the hand-back of each row's results to its task (finish_batch), and, for one
request at a time, running tasks to completion (sample_names, next_char_distribution,
score_names). The service runs the same plans, for many requests at once, from
app/inference/batching.py.

Row results do not depend on the rest of the batch: the checkpoint's matrix products give one row
the same numbers for any batch of at least MIN_ROWS rows (small batches take a different kernel),
so batches are padded to that size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from app.inference.engine import (
    MIN_ROWS,
    NO_CONDITION,
    NO_SAMPLING,
    LoopOutputs,
    Sampling,
    Start,
    task_columns,
)
from app.inference.loaded import LoadedModel
from app.inference.safety import SafetyFilter
from app.inference.sampling import (
    NOT_RUN,
    NextCharTask,
    Padding,
    Piece,
    SampleResult,
    SampleSpec,
    SampleTask,
    Score,
    ScoreTask,
    Task,
)


@dataclass
class BatchPlan:
    """One batch, ready for the model's scripted BatchLoop (app/inference/engine.py)."""

    pieces: list[Piece]  # padded to MIN_ROWS rows
    args: tuple[Any, ...]  # the loop's arguments: Python lists and ints

    @cached_property
    def rows(self) -> int:
        # once per batch: the batcher reads it on every turn of the event loop while it runs
        return sum(p.rows for p in self.pieces)


def plan_batch(pieces: list[Piece]) -> BatchPlan:
    """Lay out the rows of `pieces` as one batch."""
    rows = sum(p.rows for p in pieces)
    if rows < MIN_ROWS:
        pieces = [*pieces, Piece.whole(Padding(MIN_ROWS - rows))]
    forced = [p.task.forced[p.offset : p.offset + p.rows] for p in pieces]
    width = max(len(f) for rows_ in forced for f in rows_)
    pad = max(width, 1)
    forced_rows: list[list[int]] = []
    longest = 0  # the most characters a sampling row may reach
    for p, rows_ in zip(pieces, forced, strict=True):
        if isinstance(p.task, SampleTask):
            longest = max(longest, p.task.sampling.max_length)
            forced_rows += [p.task.prefix + [0] * (pad - len(p.task.prefix))] * p.rows
        else:
            forced_rows += [f + [0] * (pad - len(f)) for f in rows_]
    steps = max(width, longest + 1) + 1
    forced_len = [len(f) for rows_ in forced for f in rows_]
    tasks = task_columns([p.task.settings(p) for p in pieces])
    return BatchPlan(pieces, (tasks, forced_rows, forced_len, steps))


def finish_batch(model: LoadedModel, plan: BatchPlan, outputs: LoopOutputs) -> None:
    """Hand each piece of the batch its results (SampleTask.put, ScoreTask.logprob,
    NextCharTask.probs). The caller ends a task's round once all its pieces are back."""
    rows, done, score_lp, order, probs, cut, gaps = outputs
    a, c = 0, 0  # first row of the piece, its next-char row
    for p in plan.pieces:
        t, b = p.task, a + p.rows
        if isinstance(t, SampleTask):
            out: list[str | None] = []
            for r in range(a, b):
                tokens = rows[r]
                if cut[r]:  # stopped by the request's deadline: never sampled
                    out.append(NOT_RUN)
                else:
                    out.append(model.decode(tokens[: tokens.index(0)]) if done[r] else None)
            t.put(p.offset, out, gaps[a:b] if gaps else None)
        elif isinstance(t, ScoreTask):
            t.logprob[p.offset : p.offset + p.rows] = score_lp[a:b]
        elif isinstance(t, NextCharTask):
            t.probs = [(model.labels[i], q) for i, q in zip(order[c], probs[c], strict=True)]
            c += 1
        a = b


def run_batch(model: LoadedModel, tasks: list[Task]) -> None:
    """Run the current round of every task to its end as one batch, in this thread (one call of
    the model's scripted BatchLoop), and end each task's round. The service runs the same plan
    on torch's thread pool instead (app/inference/batching.py)."""
    plan = plan_batch([Piece.whole(t) for t in tasks])
    with torch.inference_mode():
        outputs = model.loop(*plan.args)
    finish_batch(model, plan, outputs)
    for t in tasks:
        t.end_round()


# -- one request at a time (the service batches concurrent ones: app/inference/batching.py) -----------------


def run_to_completion(model: LoadedModel, tasks: list[Task]) -> None:
    """Run batches until every task is done (sampling tasks may need more rounds)."""
    pending = list(tasks)
    while pending:
        run_batch(model, pending)
        pending = [t for t in pending if not t.done()]


def sample_names(
    model: LoadedModel, spec: SampleSpec, seed: int, safety: SafetyFilter | None = None
) -> SampleResult:
    """Sample up to spec.n names meeting every constraint, in at most spec.max_rounds batches;
    the same model, spec and seed give the same names."""
    task = SampleTask(model, spec, seed, safety)
    run_to_completion(model, [task])
    return task.result()


def next_char_distribution(
    model: LoadedModel, prefix: str, sampling: Sampling = NO_SAMPLING, start: Start = NO_CONDITION
) -> list[tuple[str, float]]:
    """(char, probability) for every vocabulary entry after `prefix` (or its sampling.top_k
    likeliest), most likely first; the boundary is reported as "<end>"."""
    task = NextCharTask(model, prefix, sampling, start)
    run_to_completion(model, [task])
    return task.distribution()


def score_names(model: LoadedModel, names: list[str], start: Start = NO_CONDITION) -> list[Score]:
    """Log-probability of each (lowercase, in-alphabet, non-empty) name, all in one batch."""
    task = ScoreTask(model, names, start)
    run_to_completion(model, [task])
    return task.scores()
